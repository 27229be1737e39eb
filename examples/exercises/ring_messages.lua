-- Exercise (Day56 lab, "add a shared ring buffer"): variable-length messages through shm.ring to another process, checked with a checksum on both sides
--
-- usage: shmhost exercises/ring_messages [MESSAGES] [MAX-BYTES]
--
-- The lab's last suggested experiment: instead of one message slot guarded by a mutex, a ring
-- buffer in the segment, so the writer can queue several messages before the reader takes
-- them. shm.ring is a single-producer single-consumer queue of variable-length messages in
-- shared memory: each message costs its length plus an 8-byte header, rounded up to 8, and
-- the ring wraps around its data area. This script sends MESSAGES messages of random length
-- (0 to MAX-BYTES, empty ones included) through a small ring, so it fills and wraps often;
-- the reader is another process that sometimes pauses. Both sides compute a checksum (FNV-1a
-- over every length and byte, in order), so a lost, repeated, reordered or damaged message
-- shows up as a different sum.
local shm = require "shmhost"
local E = require "exercise"

local count = math.tointeger(tonumber(arg[1] or "1000"))
local maxlen = math.tointeger(tonumber(arg[2] or "3000"))
if not count or count < 1 or not maxlen or maxlen < 0 or maxlen > 1 << 20 then
  io.stderr:write("usage: shmhost exercises/ring_messages [MESSAGES>=1] [MAX-BYTES 0..1048576]\n")
  os.exit(2)
end

-- The same checksum on both sides: FNV-1a (32 bits) over the 4-byte length and the bytes.
local FNV = [[
return function(h, s)
  for _, b in ipairs{string.byte(string.pack("<I4", #s), 1, 4)} do h = ((h ~ b) * 16777619) & 0xffffffff end
  for i = 1, #s, 4096 do
    for _, b in ipairs{string.byte(s, i, i + 4095)} do h = ((h ~ b) * 16777619) & 0xffffffff end
  end
  return h
end
]]
local fnv = load(FNV)()

-- The reading process: attaches the ring and takes `count` messages.
local READER = [[
local shm = require "shmhost"
local fnv = load(arg[3])()
local seg = assert(shm.open(arg[1]))
local r = assert(shm.ring.attach(seg, 0))
local h, bytes = 2166136261, 0
for i = 1, tonumber(arg[2]) do
  local s = assert(r:get())
  h, bytes = fnv(h, s), bytes + #s
  if i % 97 == 0 then shm.sleep(0.002) end -- a slow moment: the writer finds the ring full
end
print(("got %s messages %d bytes checksum %08x"):format(arg[2], bytes, h))
r:close()
seg:close()
]]

E.run(function()
  local capacity = 16384
  local name = E.name("ring")
  local seg <close> = assert(shm.open(name, {create = true, excl = true,
                                             size = shm.ring.footprint(capacity)}))
  local ring = shm.ring.create(seg, 0, capacity)
  print(("%d messages of 0 to %d bytes through a ring of %d bytes"):format(count, maxlen, capacity))

  local reader = E.shmhost{"-e", READER, name, tostring(count), FNV, timeout = 60}
  local h, bytes, full, empty = 2166136261, 0, 0, 0
  local t0 = shm.now()
  for i = 1, count do
    local n = math.random(0, maxlen)
    if i % 50 == 0 then n = 0 end -- some empty messages, which are allowed
    local s = E.random_bytes(n, i * 2654435761)
    if n == 0 then empty = empty + 1 end
    -- push does not wait: false means no room now; put waits until the reader makes room.
    if not ring:push(s) then
      full = full + 1
      local ok, err = ring:put(s)
      if not ok then error("ring: " .. tostring(err)) end
    end
    h, bytes = fnv(h, s), bytes + #s
  end
  local r = reader:wait()
  local secs = shm.now() - t0
  local got_bytes, got_sum = r.stdout:match("got %d+ messages (%d+) bytes checksum (%x+)")
  local mine = ("%08x"):format(h)
  print(("sent     %d messages (%d empty), %d bytes, checksum %s"):format(count, empty, bytes, mine))
  print(("received %d messages, %s bytes, checksum %s"):format(count, tostring(got_bytes), tostring(got_sum)))
  print(("the ring was full %d times (put waited for the reader); %.2f s, %.0f messages/s")
        :format(full, secs, count / secs))
  if not E.check(r.code == 0 and got_sum ~= nil, "the reader ended with its report (" .. r:status() .. ")") then
    E.show(r)
  end
  E.check(tonumber(got_bytes) == bytes and got_sum == mine, "the checksums agree")
  ring:close()
  return ("%d messages arrived in order and intact"):format(count)
end)
