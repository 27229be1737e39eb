-- counter.lua: run it twice at once; the robust mutex keeps every increment.
local shm = require "shmhost"
local Shared = shm.layout{ {"lock", "mutex"}, {"counter", "long"} }
local seg <close> = assert(shm.open("/counter_demo", {create = true, size = Shared.size}))
local d = Shared:view(seg)
if seg.created then d.lock:init() end
for _ = 1, 100000 do
  d.lock:with(function() d.counter = d.counter + 1 end)
end
print("counter =", d.counter)
