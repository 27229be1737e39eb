-- counter.lua: run it twice at once; the robust mutex keeps every increment.
local shm = require "shmhost"
local Shared = shm.layout{ {"lock", "mutex"}, {"counter", "long"} }
-- init runs once, in whichever copy creates the segment, before any other copy can open it.
local seg <close> = assert(shm.open("/counter_demo", {create = true, size = Shared.size,
  init = function(s) Shared:view(s).lock:init() end}))
local d = Shared:view(seg)
for _ = 1, 100000 do
  d.lock:with(function() d.counter = d.counter + 1 end)
end
print("counter =", d.counter)
