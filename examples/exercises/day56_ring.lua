-- Exercise (Day56): add a shared ring buffer: the eventfd is a doorbell that merges wake-ups, so a reader misses updates; a ring in the segment delivers every message
--
-- usage: shmhost exercises/day56_ring [COUNT]   (default 2000)
--
-- The lab's note says it: eventfd is a notification primitive, not a message protocol. Its
-- counter adds up the writes that nobody has read yet, so a writer that updates faster than
-- its reader wakes up produces one wake-up for many updates, and the reader sees only the
-- last one of each batch (the struct holds one message). The fix the lab suggests is a ring
-- buffer in the shared segment: every message gets a slot of its own, and the reader drains
-- them all, in order, with no lost update however the wake-ups are merged.
--
-- The writer here is this script; the reader is a child process that receives its eventfd
-- over an AF_UNIX socket, as in the lab.
local shm = require "shmhost"
local D = require "day56"
local P = require "day56_procs"

local count = math.tointeger(tonumber(arg[1] or "2000"))
if not count or count < 1 then
  io.stderr:write("usage: shmhost exercises/day56_ring [COUNT]\n")
  os.exit(2)
end
local tag = "day56_ring_" .. shm.pid()
local name, path = "/" .. tag, "/tmp/" .. tag .. ".sock"
-- The segment: the lab's struct, then a ring on a cache line of its own.
local RING_OFF = (D.Data.size + 63) // 64 * 64
local RING_CAP = 64 * 1024
local seg = assert(shm.open(name, {create = true, excl = true, size = RING_OFF + RING_CAP + 4096}))
local d = D.Data:view(seg)
assert(d.lock:init{})
d.activation, d.counter, d.message = true, 1, ""
local ring = shm.ring.create(seg, RING_OFF, RING_CAP)

local READER = [[
local shm = require "shmhost"
local D = require "day56"
local seg = assert(shm.open(arg[1]))
local d = D.Data:view(seg)
local c = assert(shm.unix.connect{path = arg[2], wait = 5})
local _, objs = assert(c:recv())
local ev = objs[1]
print("ready")
-- Part 1: the doorbell alone. One block per wake-up, as the lab's reader prints.
local wakeups, seen, last = 0, 0, nil
while true do
  ev:wait()
  wakeups = wakeups + 1
  local counter, message = d.lock:with(function() return d.counter, d.message end)
  if message == "end" then break end
  if counter ~= last then seen, last = seen + 1, counter end
end
print(("doorbell %d %d"):format(wakeups, seen))
-- Part 2: the ring. Every message is a slot of its own.
local r = shm.ring.attach(seg, tonumber(arg[3]))
local n, inorder = 0, true
while true do
  local m = r:get(10)
  if m == nil or m == "end" then break end
  n = n + 1
  if m ~= "update " .. n then inorder = false end
end
print(("ring %d %s"):format(n, tostring(inorder)))
]]

local srv = assert(shm.unix.listen{path = path})
local child = P.start{"-e", READER, name, path, tostring(RING_OFF), timeout = 60}
local conn = assert(srv:accept())
local ev = assert(shm.eventfd{})
assert(conn:send(D.hello(name), {ev}))
local pass = child:wait_line("^ready$", 10)

-- Part 1: COUNT updates back to back, each followed by its notify (the lab's order).
for i = 1, count do
  d.lock:with(function()
    d.counter = d.counter + 1
    d.message = "update " .. i
  end)
  ev:notify()
end
d.lock:with(function() d.message = "end" end)
ev:notify()
pass = child:wait_line("^doorbell", 30) and pass
local wakeups, seen = 0, 0
for _, l in ipairs(child.lines) do
  local a, b = l:match("^doorbell (%d+) (%d+)")
  if a then wakeups, seen = tonumber(a), tonumber(b) end
end
print(("doorbell only: %d updates, %d notifies -> %d wake-ups; the reader saw %d of the updates")
      :format(count, count + 1, wakeups, seen))
if seen < count then
  print(("               %d updates were overwritten before the reader looked"):format(count - seen))
else
  print("               (the reader kept up this time; on a busy machine it does not)")
end

-- Part 2: the same updates through the ring; put() waits when the ring is full.
for i = 1, count do assert(ring:put("update " .. i, 10)) end
assert(ring:put("end", 10))
pass = child:wait_line("^ring", 30) and pass
local got, inorder = 0, false
for _, l in ipairs(child.lines) do
  local a, b = l:match("^ring (%d+) (%a+)")
  if a then got, inorder = tonumber(a), b == "true" end
end
print(("ring:          %d updates -> the reader got %d, %s"):format(count, got,
      inorder and "all in order" or "NOT in order"))
local code = child:wait(10)
pass = pass and code == 0 and got == count and inorder and seen <= count

P.cleanup()
conn:close()
srv:close()
seg:close()
if not pass then child:show("reader") end
print(pass and "PASS: the doorbell merges wake-ups; the ring delivers every update" or "FAIL")
os.exit(pass and 0 or 1)
