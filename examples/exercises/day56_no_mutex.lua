-- Exercise (Day56): remove the mutex protection: a reader sees torn updates (a counter with another update's message); with the lock it never does
--
-- usage: shmhost exercises/day56_no_mutex [SECONDS]   (default 1)
--
-- The lab's writer changes two fields per update (counter + 1, then the message) and the
-- reader reads both. Without the lock nothing keeps the reader from looking between the two
-- stores, or the writer from moving on between the reader's two loads: the reader then sees
-- counter=N next to the message of update N-1 or N+1, a state that never existed. Here a child
-- process writes "update N" with counter N as fast as it can while this process reads the pair
-- and counts the pairs that do not match, first without the lock and then with it.
local shm = require "shmhost"
local D = require "day56"
local P = require "day56_procs"

local secs = tonumber(arg[1] or "1")
if not secs or secs <= 0 or secs > 60 then
  io.stderr:write("usage: shmhost exercises/day56_no_mutex [SECONDS (0-60)]\n")
  os.exit(2)
end
local name = "/day56_no_mutex_" .. shm.pid()
local seg = assert(shm.open(name, {create = true, excl = true, size = D.Data.size}))
local d = D.Data:view(seg)
assert(d.lock:init{})

local WRITER = [[
local shm = require "shmhost"
local D = require "day56"
local d = D.Data:view(assert(shm.open(arg[1])))
local locked, secs = arg[2] == "lock", tonumber(arg[3])
print("ready")
local i, stop = 0, shm.now() + secs
while shm.now() < stop do
  for _ = 1, 100 do
    i = i + 1
    if locked then
      d.lock:with(function() d.counter = i; d.message = "update " .. i end)
    else
      d.counter = i
      d.message = "update " .. i
    end
  end
end
print("wrote " .. i)
]]

-- Runs the writer child for `secs` and reads pairs meanwhile; returns reads, torn reads,
-- and the number of updates the child made.
local function run(mode)
  d.counter, d.message = 0, "update 0"
  local child = P.start{"-e", WRITER, name, mode, tostring(secs), timeout = secs + 30}
  assert(child:wait_line("^ready$", 10), "the writer child did not start")
  local reads, torn = 0, 0
  local stop = shm.now() + secs
  while shm.now() < stop do
    for _ = 1, 100 do
      local counter, message
      if mode == "lock" then
        counter, message = d.lock:with(function() return d.counter, d.message end)
      else
        counter = d.counter
        message = d.message
      end
      reads = reads + 1
      if message ~= "update " .. counter then torn = torn + 1 end
    end
  end
  child:wait_line("^wrote", 10)
  local code = child:wait(10)
  local wrote = 0
  for _, l in ipairs(child.lines) do wrote = tonumber(l:match("^wrote (%d+)")) or wrote end
  if code ~= 0 then child:show("writer") end
  return reads, torn, wrote, code == 0
end

local reads1, torn1, wrote1, ok1 = run("nolock")
print(("without the mutex: %d updates written, %d pairs read, %d torn (%.2f%%)")
      :format(wrote1, reads1, torn1, reads1 > 0 and 100 * torn1 / reads1 or 0))
if torn1 == 0 then print("  (no tear caught this time: the window is small, but it is there)") end
local reads2, torn2, wrote2, ok2 = run("lock")
print(("with the mutex:    %d updates written, %d pairs read, %d torn"):format(wrote2, reads2, torn2))

P.cleanup()
seg:close()
local pass = ok1 and ok2 and reads2 > 0 and wrote2 > 0 and torn2 == 0
print(pass and "PASS: under the lock every pair read is one that was written" or "FAIL")
os.exit(pass and 0 or 1)
