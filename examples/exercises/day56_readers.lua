-- Exercise (Day56): several readers, each with its own eventfd; one joins while the writer waits for input, one leaves, all see every update
--
-- usage: shmhost exercises/day56_readers [READERS]   (default 3)
--
-- The lab's writer hands out one eventfd. With several readers, one shared eventfd does not
-- work: its counter is a single value, so the first reader to read it takes the wake-up and
-- the others sleep on. The writer scenario therefore gives every reader an eventfd of its own
-- and writes to each after an update. Because the writer is one event loop (accept, stdin and
-- every reader's connection), a reader can join at any time, even while the writer waits for a
-- command, and a reader that dies is simply dropped.
local shm = require "shmhost"
local P = require "day56_procs"

local n = math.tointeger(tonumber(arg[1] or "3"))
if not n or n < 1 or n > 50 then
  io.stderr:write("usage: shmhost exercises/day56_readers [READERS (1-50)]\n")
  os.exit(2)
end
local tag = "day56_readers_" .. shm.pid()
local where = {"--name", "/" .. tag, "--socket", "/tmp/" .. tag .. ".sock"}
-- Starts the writer or a reader on this exercise's own segment and socket.
local function start(role)
  local t = {role, stdin = role == "writer", timeout = 30}
  for _, a in ipairs(where) do t[#t + 1] = a end
  return P.start(t)
end
local pass = true
local function check(ok, what)
  print((ok and "ok    " or "FAIL  ") .. what)
  pass = pass and ok
end

-- Part 1: why one eventfd per reader. Two processes wait on the same eventfd; one notify
-- wakes exactly one of them (the first read takes the counter; the other reads EAGAIN).
local SHARED = [[
local shm = require "shmhost"
local c = assert(shm.unix.connect{path = arg[1], wait = 5})
local _, objs = assert(c:recv())
print("ready")
objs[1]:on(function(count) print("woken " .. count) end)
shm.sleep(1)
shm.exit(0)
]]
do
  local path = "/tmp/" .. tag .. "_shared.sock"
  local srv = assert(shm.unix.listen{path = path})
  local shared = assert(shm.eventfd{})
  local kids, conns = {}, {}
  for i = 1, 2 do kids[i] = P.start{"-e", SHARED, path, timeout = 10} end
  for i = 1, 2 do
    conns[i] = assert(srv:accept())
    assert(conns[i]:send("x", {shared}))
  end
  local ready = kids[1]:wait_line("^ready$", 5) and kids[2]:wait_line("^ready$", 5)
  shared:notify()
  shm.sleep(0.5)
  local woken = kids[1]:grep("^woken") + kids[2]:grep("^woken")
  print(("one eventfd shared by 2 readers, one notify: %d of them woke"):format(woken))
  check(ready and woken == 1, "a shared eventfd wakes only one reader: each needs its own")
  for i = 1, 2 do kids[i]:wait(3) conns[i]:close() end
  shared:close()
  srv:close()
end

-- Part 2: the writer scenario, one eventfd per reader.
local w = start("writer")
check(w:wait_line("listen success", 5), "the writer listens")

local readers = {}
for i = 1, n do
  readers[i] = start("reader")
end
for i, r in ipairs(readers) do check(r:wait_line("epoll wait start", 5), "reader " .. i .. " has its eventfd") end

local updates = 4
for u = 1, updates do
  w:send("-w update " .. u)
  local all = true
  for _, r in ipairs(readers) do all = r:wait_line("^message=update " .. u .. "$", 5) and all end
  check(all, ("every reader saw update %d (counter=%d)"):format(u, u + 1))
end

-- The writer is waiting for its next command now; a reader joins anyway.
local late = start("reader")
check(late:wait_line("epoll wait start", 5), "a late reader joined while the writer waited for input")
readers[1]:kill("sigkill")
readers[1]:wait(5)
print("reader 1 killed (SIGKILL); the writer drops it when its connection ends")
w:send("-w after the changes")
local all = late:wait_line("^message=after the changes$", 5)
for i = 2, n do all = readers[i]:wait_line("^message=after the changes$", 5) and all end
check(all, "the late reader and the remaining ones saw the next update")
check(late:grep("^counter=") == 1, "the late reader got no block at start, only the update after it")

w:send("-t")
for i = 2, n do
  local code = readers[i]:wait(2)
  check(code == 0 and readers[i]:grep("writer shut down") == 1, "reader " .. i .. " ended with status 0 after -t")
end
check(late:wait(2) == 0, "the late reader ended with status 0")
check(w:wait(2) == 0, "the writer ended with status 0")
for i = 2, n do
  check(readers[i]:grep("^%[INFO%] shm_data:") == updates + 1, ("reader %d printed %d blocks, one per update")
        :format(i, updates + 1))
end
P.cleanup()
if not pass then
  w:show("writer")
  for i, r in ipairs(readers) do r:show("reader" .. i) end
  late:show("late")
end
print(pass and ("PASS: %d readers, one eventfd each: every update reached every live reader"):format(n)
           or "FAIL")
os.exit(pass and 0 or 1)
