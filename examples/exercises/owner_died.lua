-- Exercise: a holder killed while holding the lock (a robust mutex reports owner-died; a plain one stays locked for ever)
--
-- usage: shmhost exercises/owner_died
--
-- A child process takes the mutex, starts an update (it sets `dirty`), and is killed with
-- SIGKILL before it finishes. With a robust mutex the kernel's robust-futex list marks the
-- mutex as the dead owner's, and the next lock succeeds with "owner-died": this process holds
-- the lock, sees the half-done update and repairs it. With robust=false nobody is told: the
-- mutex stays locked by a process that no longer exists, and every lock times out.
local shm = require "shmhost"
local uv = require "luv"

local Shared = shm.layout{{"lock", "mutex"}, {"dirty", "int"}, {"value", "int"}}
local name = "/shmhost_owner_died_" .. shm.pid()
local seg = assert(shm.open(name, {create = true, excl = true, size = Shared.size}))
local d = Shared:view(seg)

local HOLDER = [[
local shm = require "shmhost"
local Shared = shm.layout{{"lock", "mutex"}, {"dirty", "int"}, {"value", "int"}}
local d = Shared:view(assert(shm.open(arg[1])))
assert(d.lock:lock())
d.dirty = 1                  -- the update starts ...
d.value = d.value + 100
io.stdout:write("locked\n")
shm.sleep(60)                -- ... and never ends: the parent kills us here
]]

-- Starts the holder, waits until it holds the lock, kills it with SIGKILL, reaps it.
local function kill_a_holder()
  local out = uv.new_pipe(false)
  local me = coroutine.running()
  local h, pid
  h, pid = uv.spawn(uv.exepath(), {args = {"-e", HOLDER, name}, stdio = {nil, out, 2}},
    function(code, signal) h:close(); shm.resume(me, "exit", code, signal) end)
  assert(h, "cannot start the holder")
  out:read_start(function(err, data)
    if data and data:find("locked", 1, true) then shm.resume(me, "locked") end
  end)
  local what = shm.suspend()
  assert(what == "locked", "the holder did not take the lock")
  print(("holder pid %d holds the lock; killing it with SIGKILL"):format(pid))
  uv.kill(pid, "sigkill")
  local _, _, signal = shm.suspend()
  out:close()
  print(("holder ended by signal %d"):format(signal))
end

local pass = true

print("-- robust mutex (the default)")
assert(d.lock:init{robust = true})
d.dirty, d.value = 0, 1
kill_a_holder()
local ok, why = d.lock:lock(2)
print(("lock() -> %s, %s"):format(tostring(ok), tostring(why)))
if ok and why == "owner-died" then
  print(("we hold the lock; dirty=%d value=%d: repairing (undo the half update)"):format(d.dirty, d.value))
  d.value, d.dirty = d.value - 100, 0
  d.lock:unlock()
  local ok2, why2 = d.lock:lock(1)
  print(("next lock() -> %s, %s (the mutex was made consistent)"):format(tostring(ok2), tostring(why2)))
  pass = pass and ok2 == true and why2 == nil and d.value == 1
  d.lock:unlock()
else
  pass = false
end

print("-- the same with robust=false")
assert(d.lock:init{robust = false})
kill_a_holder()
local t0 = shm.now()
local ok3, why3 = d.lock:lock(1)
print(("lock(1) -> %s, %s after %.1f s: the dead holder's lock is never released")
      :format(tostring(ok3), tostring(why3), shm.now() - t0))
pass = pass and ok3 == nil and why3 == "timeout"

seg:close()
print(pass and "PASS: a robust mutex survives a killed holder; a plain one does not" or "FAIL")
os.exit(pass and 0 or 1)
