-- Exercise: an anonymous memfd passed to another process over an AF_UNIX socket (SCM_RIGHTS), sealed so the peer cannot shrink it (ftruncate fails with EPERM)
--
-- usage: shmhost exercises/memfd_sealed
--
-- memfd_create(2) makes shared memory with no name at all: nothing in /dev/shm to leak, and
-- the only way in is the descriptor. This process hands the descriptor to a peer over an
-- AF_UNIX socket (SCM_RIGHTS ancillary data; the peer gets its own descriptor for the same
-- memory and maps it). Handing memory to someone you do not trust has a catch: a peer that
-- shrinks the object makes your next access fault (see exercises/truncated_segment). File
-- seals remove that risk: shm.memfd{seal = true} adds F_SEAL_SHRINK and F_SEAL_GROW and then
-- F_SEAL_SEAL, so from then on nobody, the creator included, can change the size, and
-- ftruncate fails with EPERM. Writing the contents stays allowed.
-- The peer receives a sealed and an unsealed memfd, reads both, tries to shrink and grow the
-- sealed one (EPERM), writes a reply into it, and shrinks the unsealed one, which this
-- process then cannot read any more.
local shm = require "shmhost"
local uv = require "luv"
local E = require "exercise"

local PEER = [[
local shm = require "shmhost"
local conn = assert(shm.unix.connect{path = arg[1], wait = 10})
local text, objs = assert(conn:recv())
local sealed, open = objs[1], objs[2]
print(("received %q with %d descriptors: %s %s, %s %s"):format(text, #objs,
      sealed.kind, sealed.name, open.kind, open.name))
print("sealed says: " .. sealed:read(0, 24))
local ok, msg, errno = sealed:resize(0)
print(("sealed:resize(0) -> %s, %s, errno %s"):format(tostring(ok), tostring(msg), tostring(errno)))
local ok2, msg2, errno2 = sealed:resize(1 << 20)
print(("sealed:resize(1 MiB) -> %s, %s, errno %s"):format(tostring(ok2), tostring(msg2), tostring(errno2)))
sealed:write(100, "reply from pid " .. shm.pid())
print("open:resize(0) -> " .. tostring(assert(open:resize(0))))
conn:send("done")
assert(conn:recv()) -- wait until the other side has looked
]]

E.run(function()
  local path = E.path("memfd.sock")
  local srv <close> = assert(shm.unix.listen{path = path})
  local sealed <close> = assert(shm.memfd("sealed", {size = 65536, seal = true}))
  local open <close> = assert(shm.memfd("unsealed", {size = 65536}))
  sealed:write(0, "sealed: sizes are fixed.")
  open:write(0, "unsealed: anyone may cut.")
  print(("memfds made: %s (%d bytes, sealed) and %s (%d bytes); nothing appears in /dev/shm")
        :format(sealed.name, sealed:size(), open.name, open:size()))

  local peer = E.shmhost{"-e", PEER, path, timeout = 30}
  -- accept has no timeout: a peer that never connects closes the listener, which ends the wait.
  local guard = uv.new_timer()
  guard:start(15000, 0, function() srv:close() end)
  local conn, aerr = srv:accept()
  guard:close()
  if not conn then error("no peer connected: " .. tostring(aerr) .. "\n" .. peer:stderr_text()) end
  local who = conn:peer()
  print(("peer pid %d connected; sending both descriptors"):format(who.pid))
  conn:send("two memfds", {sealed, open})
  local done = conn:recv()
  E.check(done == "done", "the peer finished its part (got " .. tostring(done) .. ")")

  local reply = sealed:read(100, 32):match("^[^%z]*")
  print("sealed memfd holds the peer's reply: " .. reply)
  local ok, err = pcall(open.read, open, 0, 8)
  print("reading the unsealed one now: " .. (ok and "still works" or err))
  conn:send("bye")
  local p = peer:wait()
  for line in p.stdout:gmatch("[^\n]+") do print("  peer: " .. line) end
  if not E.check(p.code == 0, "the peer ended cleanly (" .. p:status() .. ")") then E.show(p) end
  E.check(p.stdout:find("sealed:resize(0) -> nil, ftruncate memfd:sealed: Operation not permitted, errno "
                        .. shm.errno.EPERM, 1, true) ~= nil, "shrinking the sealed memfd fails with EPERM")
  E.check(p.stdout:find("sealed:resize(1 MiB) -> nil", 1, true) ~= nil, "growing it fails too")
  E.check(reply == "reply from pid " .. who.pid, "the peer's write reached this process")
  E.check(not ok and err:find("truncated by a peer", 1, true), "the unsealed memfd was cut under this process")
  E.check(sealed:read(0, 24) == "sealed: sizes are fixed.", "the sealed memfd reads on")
  conn:close()
  return "a sealed memfd keeps its size whatever the peer does; an unsealed one does not"
end)
