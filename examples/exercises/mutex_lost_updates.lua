-- Exercise: remove the mutex and count lost updates (processes add to a shared counter with and without a process-shared mutex)
--
-- usage: shmhost exercises/mutex_lost_updates [PROCESSES] [INCREMENTS]
--
-- Several processes each add 1 to a counter in shared memory INCREMENTS times, by reading it,
-- working a little, and writing it back. Without the mutex two processes read the same value
-- and one of the two additions is lost; with the mutex around the read and the write none is.
-- The work between read and write only widens the window the race needs; on one core it may
-- still show no loss, since the processes then seldom run at the same moment.
local shm = require "shmhost"
local uv = require "luv"

local procs = math.tointeger(tonumber(arg[1] or "4"))
local each = math.tointeger(tonumber(arg[2] or "20000"))
if not procs or procs < 2 or not each or each < 1 then
  io.stderr:write("usage: shmhost exercises/mutex_lost_updates [PROCESSES>=2] [INCREMENTS>=1]\n")
  os.exit(2)
end

local Shared = shm.layout{{"lock", "mutex"}, {"start", "int"}, {"counter", "long"}}
local name = "/shmhost_lost_updates_" .. shm.pid()
local seg = assert(shm.open(name, {create = true, excl = true, size = Shared.size}))
local d = Shared:view(seg)
assert(d.lock:init())

-- What each child runs: wait for the start flag (so all begin together), then count.
local CHILD = [[
local shm = require "shmhost"
local name, use_lock, n = arg[1], arg[2] == "lock", tonumber(arg[3])
local Shared = shm.layout{{"lock", "mutex"}, {"start", "int"}, {"counter", "long"}}
local seg = assert(shm.open(name))
local d = Shared:view(seg)
local m = d.lock
local off = Shared:offset("counter")
while seg:load("i32", Shared:offset("start")) == 0 do shm.sleep(0.001) end
local function add()
  local v = seg:get("i64", off)
  for _ = 1, 20 do end        -- some work between the read and the write
  seg:set("i64", off, v + 1)
end
for _ = 1, n do
  if use_lock then m:lock(); add(); m:unlock() else add() end
end
]]

-- Runs `procs` children in the given mode; returns the final counter and the seconds taken.
local function round(mode)
  seg:store("i32", Shared:offset("start"), 0)
  d.counter = 0
  local left, failed = procs, false
  local me = coroutine.running()
  for _ = 1, procs do
    local h
    h = uv.spawn(uv.exepath(), {args = {"-e", CHILD, name, mode, tostring(each)},
                                stdio = {nil, 1, 2}},
      function(code, signal)
        if code ~= 0 or signal ~= 0 then failed = true end
        h:close()
        left = left - 1
        if left == 0 then shm.resume(me) end
      end)
    assert(h, "cannot start a child process")
  end
  shm.sleep(0.2) -- let every child reach the start line
  local t0 = shm.now()
  seg:store("i32", Shared:offset("start"), 1)
  shm.suspend()
  if failed then error("a child process failed") end
  return d.counter, shm.now() - t0
end

local want = procs * each
print(("%d processes x %d increments = %d expected"):format(procs, each, want))
local without, t1 = round("nolock")
print(("without the mutex: counter %d, %d updates lost (%.1f%%), %.2f s")
      :format(without, want - without, 100 * (want - without) / want, t1))
local with, t2 = round("lock")
print(("with the mutex:    counter %d, %d updates lost, %.2f s"):format(with, want - with, t2))
if want - without == 0 then
  print("(no update was lost without the mutex this time: the processes may not have run in parallel)")
end
seg:close()
if with == want then
  print("PASS: the mutex loses no update")
else
  print("FAIL: updates were lost even with the mutex")
  os.exit(1)
end
