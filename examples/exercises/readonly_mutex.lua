-- Exercise (Day56 lab notes): even a reader maps the segment read-write when a mutex lives in it; in a read-only mapping locking is refused with a Lua error, not a crash
--
-- usage: shmhost exercises/readonly_mutex
--
-- The lab's note: "even reader-only processes require PROT_READ | PROT_WRITE, because the
-- pthread mutex modifies internal state." Locking writes the owner's thread id into the
-- mutex (and the robust list links through it), so pthread_mutex_lock on a PROT_READ mapping
-- is a SIGSEGV in C. shmhost refuses before touching it: a reader process that maps the
-- segment read-only gets a Lua error from lock() and trylock() naming the cause, and can still
-- read the data; a field write is refused too. The same reader with a read-write mapping
-- locks, reads and unlocks, while the writer holds the lock in between to show it waits.
local shm = require "shmhost"
local E = require "exercise"

local Shared = shm.layout{ {"lock", "mutex"}, {"counter", "int"}, {"message", "char[64]"} }

-- The reader: maps the segment read-only or read-write and tries what a reader does.
local READER = [[
local shm = require "shmhost"
local Shared = shm.layout{ {"lock", "mutex"}, {"counter", "int"}, {"message", "char[64]"} }
local readonly = arg[2] == "readonly"
local d = Shared:view(assert(shm.open(arg[1], {readonly = readonly})))
local function try(what, f)
  local ok, err = pcall(f)
  print(what .. ": " .. (ok and "ok" or "error: " .. tostring(err):gsub("^[^:]*:%d+: ", "")))
end
try("lock", function() assert(d.lock:lock(5)) end)
try("read", function() print(("counter=%d message=%s"):format(d.counter, d.message)) end)
try("write", function() d.counter = d.counter + 1 end)
if not readonly then d.lock:unlock() end
try("trylock", function() assert(d.lock:trylock()); d.lock:unlock() end)
]]

E.run(function()
  local name = E.name("romutex")
  local seg <close> = assert(shm.open(name, {create = true, excl = true, size = Shared.size}))
  local d = Shared:view(seg)
  assert(d.lock:init())
  d.counter, d.message = 1, "hello shared memory"

  print("1. a reader with a read-only mapping (PROT_READ):")
  local r = E.run_shmhost{"-e", READER, name, "readonly", timeout = 15}
  for line in r.stdout:gmatch("[^\n]+") do print("   " .. line) end
  if not E.check(r.code == 0, "the read-only reader ended normally (" .. r:status() .. ")") then E.show(r) end
  E.check(r.stdout:find("lock: error: cannot lock a mutex in a read-only mapping", 1, true),
          "lock() in a read-only mapping is a Lua error")
  E.check(r.stdout:find("trylock: error: cannot lock a mutex in a read-only mapping", 1, true),
          "trylock() too")
  E.check(r.stdout:find("counter=1 message=hello shared memory", 1, true), "reading works read-only")
  E.check(r.stdout:find("write: error: .*read%-only") ~= nil, "a field write is refused")

  print("\n2. the same reader with a read-write mapping, while the writer holds the lock 0.3 s:")
  assert(d.lock:lock())
  r = E.shmhost{"-e", READER, name, "readwrite", timeout = 15}
  shm.sleep(0.3)
  local waited = r:stdout_text() == ""
  d.counter = 2
  d.lock:unlock()
  r:wait()
  for line in r.stdout:gmatch("[^\n]+") do print("   " .. line) end
  if not E.check(r.code == 0, "the read-write reader ended normally (" .. r:status() .. ")") then E.show(r) end
  E.check(waited, "the reader waited while the writer held the lock")
  E.check(r.stdout:find("lock: ok\ncounter=2 message=hello shared memory\nread: ok\nwrite: ok\ntrylock: ok", 1, true),
          "locking, reading and writing work read-write, and it saw the writer's update")
  E.check(d.counter == 3, "the reader's increment reached the writer")
  return "a mutex needs a writable mapping; shmhost says so instead of crashing"
end)
