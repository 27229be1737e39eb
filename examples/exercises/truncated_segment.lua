-- Exercise: a peer truncates a segment another process is reading; the reader gets a Lua error it can catch, and never dies of SIGBUS
--
-- usage: shmhost exercises/truncated_segment
--
-- A mapping outlives the size of the object behind it: when a peer shrinks a POSIX object
-- with ftruncate, the pages past the new end are gone, and the next touch of them raises
-- SIGBUS, which kills a C program on the spot. shmhost guards every access to a segment:
-- the fault becomes a Lua error ("... was truncated by a peer"), the segment stays an object
-- that can be asked about and closed, and every later access raises the same error.
-- Here the peer is coreutils' `truncate -s 0 /dev/shm/NAME`, the reader another shmhost:
--   1. the reader catches the error with pcall and carries on (exit 0);
--   2. the reader does not catch it: the error ends it with status 1 and a message, not a
--      signal.
local shm = require "shmhost"
local E = require "exercise"

-- The reader: maps the object, says so, and reads all of it every few milliseconds.
local READER = [[
local shm = require "shmhost"
local seg = assert(shm.open(arg[1], {readonly = true}))
local catch = arg[2] == "catch"
local size = seg:size()
print("reading " .. size .. " bytes")
local deadline = shm.now() + 20
while shm.now() < deadline do
  if catch then
    local ok, err = pcall(seg.read, seg, 0, size)
    if not ok then
      print("caught: " .. err)
      print("again:  " .. select(2, pcall(seg.get, seg, "u8", 0)))
      print("stat size now " .. assert(seg:stat()).size)
      seg:close()
      os.exit(0)
    end
  else
    seg:read(0, size)
  end
  shm.sleep(0.005)
end
print("no truncation seen")
os.exit(3)
]]

-- Creates a segment full of data, starts a reader, truncates the object under it and returns
-- the reader once it has ended.
local function truncate_under(tag, mode)
  local name = E.name(tag)
  local seg <close> = assert(shm.open(name, {create = true, excl = true, size = 65536}))
  seg:write(0, string.rep("shared memory ", 4681))
  local r = E.shmhost{"-e", READER, name, mode, timeout = 30}
  assert(r:wait_for("reading", 15), "the reader did not start: " .. r:stderr_text())
  local t = E.start{"truncate", "-s", "0", "/dev/shm" .. name, timeout = 10}:wait()
  E.check(t.code == 0, "truncate ran (" .. t:status() .. ": " .. t.stderr .. ")")
  r:wait()
  -- This process maps it too: its next access raises the same way.
  local ok, err = pcall(seg.read, seg, 0, 16)
  E.check(not ok and err:find("truncated by a peer", 1, true), "this process's mapping raises too")
  return r, err
end

E.run(function()
  print("1. the reader catches the error")
  local r, mine = truncate_under("trunc1", "catch")
  for line in r.stdout:gmatch("[^\n]+") do print("   reader: " .. line) end
  print("   here:   " .. tostring(mine))
  print("   reader ended with " .. r:status())
  E.check(r.code == 0 and r.signal == 0, "the reader caught the error and ended normally")
  E.check(r.stdout:find("caught: .*truncated by a peer") ~= nil, "the error names the truncation")
  E.check(r.stdout:find("again: .*truncated by a peer") ~= nil, "later accesses raise too")

  print("\n2. the reader does not catch it")
  r = truncate_under("trunc2", "plain")
  local msg = r.stderr:match("[^\n]*truncated by a peer[^\n]*")
  print("   reader: " .. tostring(msg))
  print("   reader ended with " .. r:status() .. (r.signal == 7 and " (SIGBUS: the guard failed)" or ""))
  E.check(r.code == 1 and r.signal == 0 and msg ~= nil, "an uncaught error ends it with status 1, not SIGBUS")
  return "a truncated segment is a Lua error, never a SIGBUS death"
end)
