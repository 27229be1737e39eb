-- shm.mutex: every method, every misuse, a holder killed while holding (in another process),
-- and a contended lock in a task that leaves the loop running.
local T = require "testlib"
local shm = require "shmhost"
local uv = require "luv"

local function segment(tag, size)
  return assert(shm.open(T.name(tag), {create = true, excl = true, size = size or 4096}))
end

T.test("init, lock, trylock, unlock, consistent", function()
  local seg <close> = segment("basic")
  local m = shm.mutex(seg, 64)
  T.eq(tostring(m), "shmhost.mutex (offset 64)")
  T.eq(m:init(), true)
  T.eq(m:lock(), true)
  local ok, why = m:trylock()
  T.eq(ok, false); T.eq(why, "busy")
  -- Error-checking by default: locking twice in the same task is refused, not a hang.
  local msg, errno = T.checkfail("lock mutex at offset 64: ", m.lock, m)
  T.eq(errno, shm.errno.EDEADLK)
  T.eq(m:unlock(), true)
  msg, errno = T.checkfail("unlock mutex at offset 64", m.unlock, m)
  T.eq(errno, shm.errno.EPERM)
  T.eq(m:trylock(), true)
  T.eq(m:unlock(), true)
  T.eq(m:lock(0.5), true)
  T.eq(m:unlock(), true)
  -- consistent() on a mutex that is not in the owner-died state is an EINVAL from pthread.
  msg, errno = T.checkfail("pthread_mutex_consistent", m.consistent, m)
  T.eq(errno, shm.errno.EINVAL)
  T.eq(shm.MUTEX_SIZE > 0, true)
  m:close()
end)

T.test("init options: robust=false, normal and recursive types", function()
  local seg <close> = segment("opts")
  local m = shm.mutex(seg, 0)
  T.eq(m:init{robust = false, type = "normal"}, true)
  T.eq(m:lock(), true)
  -- A normal mutex relocked by its own thread would hang the process: refused.
  T.checkfail("Resource deadlock", m.lock, m)
  T.eq(m:unlock(), true)
  T.eq(m:init{type = "recursive"}, true)
  T.eq(m:lock(), true)
  T.eq(m:lock(), true)
  T.eq(m:unlock(), true)
  T.eq(m:unlock(), true)
  T.checkfail("Operation not permitted", m.unlock, m)
end)

T.test("misuse raises and names the argument", function()
  local seg <close> = segment("misuse", 4096)
  T.checkerr("shmhost.segment expected, got nil", shm.mutex, nil, 0)
  T.checkerr("bad argument #2", shm.mutex, seg, "x")
  T.checkerr("bad argument #2", shm.mutex, seg)
  T.checkerr("outside segment", shm.mutex, seg, 4090)
  T.checkerr("outside segment", shm.mutex, seg, -8)
  T.checkerr("not a multiple of", shm.mutex, seg, 3)
  local m = shm.mutex(seg, 0)
  T.checkerr("unknown option 'robus'", m.init, m, {robus = true})
  T.checkerr("option 'robust' must be a boolean", m.init, m, {robust = 1})
  T.checkerr("option 'type' must be", m.init, m, {type = "fast"})
  T.checkerr("bad argument #2", m.init, m, 42)
  m:init()
  T.checkerr("non-negative", m.lock, m, -1)
  T.checkerr("number expected", m.lock, m, "soon")
  T.checkerr("function expected", m.on_owner_died, m, 5)
  T.checkerr("function expected", m.with, m, 5)
  T.checkerr("shmhost.mutex expected", m.lock, seg)
  T.checkerr("shmhost.mutex expected", m.lock)
  -- Use after close raises; close is idempotent.
  T.eq(m:close(), true)
  T.eq(m:close(), true)
  T.eq(tostring(m), "shmhost.mutex (closed)")
  T.checkerr("mutex is closed", m.lock, m)
  T.checkerr("mutex is closed", m.unlock, m)
  T.checkerr("mutex is closed", m.trylock, m)
  T.checkerr("mutex is closed", m.with, m, function() end)
  -- A closed segment under a live mutex object raises, never touches the unmapped page.
  local m2 = shm.mutex(seg, 64)
  m2:init()
  seg:close()
  T.checkerr("its segment is closed", m2.lock, m2)
  T.checkerr("its segment is closed", m2.trylock, m2)
end)

T.test("a mutex in a read-only mapping cannot be locked", function()
  local seg <close> = segment("ro")
  shm.mutex(seg, 0):init()
  local ro <close> = assert(shm.open(T.name("ro"), {readonly = true}))
  local m = shm.mutex(ro, 0)
  T.checkerr("cannot lock a mutex in a read-only mapping", m.lock, m)
  T.checkerr("cannot lock a mutex in a read-only mapping", m.trylock, m)
  T.checkerr("cannot unlock a mutex in a read-only mapping", m.unlock, m)
  T.checkerr("read-only mapping", m.init, m)
  T.checkerr("read-only mapping", m.with, m, function() end)
end)

T.test("a segment truncated by a peer gives an error, not SIGBUS", function()
  local seg <close> = segment("trunc", 8192)
  local m = shm.mutex(seg, 4096)
  m:init()
  local peer <close> = assert(shm.open(T.name("trunc")))
  assert(peer:resize(4096))
  T.checkerr("truncated", m.lock, m)
end)

T.test("the mutex keeps its segment alive", function()
  local m
  do
    local seg = segment("alive")
    m = shm.mutex(seg, 0)
    seg:unlink()
  end
  collectgarbage(); collectgarbage()
  T.eq(m:init(), true)
  T.eq(m:lock(), true)
  T.eq(m:unlock(), true)
end)

T.test("a contended lock in a task does not block the loop", function()
  local seg <close> = segment("tasks")
  local m = shm.mutex(seg, 0)
  m:init()
  local ticks = 0
  local timer = uv.new_timer()
  timer:start(5, 5, function() ticks = ticks + 1 end)
  local events = {}
  shm.spawn(function()
    assert(m:lock())
    events[#events + 1] = "A locked"
    shm.sleep(0.3)
    events[#events + 1] = "A unlocks"
    assert(m:unlock())
  end)
  shm.sleep(0.02)
  -- The lock is held by another task of this process: a timeout form gives up.
  local t0 = shm.now()
  local ok, why, errno = m:lock(0.1)
  T.eq(ok, nil); T.eq(why, "timeout"); T.eq(errno, shm.errno.ETIMEDOUT)
  T.ok(shm.now() - t0 >= 0.09, "waited the timeout")
  T.eq(m:lock(0), nil)
  local ticks_before = ticks
  T.eq(m:lock(), true)
  events[#events + 1] = "main locked"
  timer:stop(); timer:close()
  T.eq(table.concat(events, ","), "A locked,A unlocks,main locked")
  T.ok(ticks - ticks_before >= 10, "the timer kept ticking while the lock was contended (" .. (ticks - ticks_before) .. ")")
  T.eq(m:unlock(), true)
end)

T.test("a task that ended holding the lock: waiting for it is refused, not a hang", function()
  local seg <close> = segment("deadtask")
  local m = shm.mutex(seg, 0)
  m:init()
  local co = shm.spawn(function() assert(m:lock()) end)
  shm.sleep(0.01)
  T.eq(coroutine.status(co), "dead")
  local msg, errno = T.checkfail("Resource deadlock", m.lock, m, 5)
  T.eq(errno, shm.errno.EDEADLK)
  T.eq(m:unlock(), true) -- same thread: this task may unlock it
end)

T.test("closing a mutex a task waits for resumes it with nil, 'closed'", function()
  local seg <close> = segment("closewait")
  local m = shm.mutex(seg, 0)
  m:init()
  assert(m:lock())
  local m2 = shm.mutex(seg, 0)
  local r
  shm.spawn(function() r = table.pack(m2:lock()) end)
  shm.sleep(0.02)
  m2:close()
  T.ok(T.wait_until(function() return r ~= nil end, 2))
  T.eq(r[1], nil); T.eq(r[2], "closed")
  T.eq(m:unlock(), true)
end)

T.test("outside a task (a luv callback) lock blocks, and refuses a lock this process holds", function()
  local seg <close> = segment("cb")
  local m = shm.mutex(seg, 0)
  m:init()
  local results = {}
  local me = coroutine.running()
  local t = uv.new_timer()
  t:start(1, 0, function()
    results.free = {m:lock()}
    m:unlock()
    results.free_timed = {m:lock(0.1)}
    m:unlock()
    t:close()
    shm.resume(me)
  end)
  shm.suspend()
  T.eq(results.free[1], true)
  T.eq(results.free_timed[1], true)
  assert(m:lock())
  local t2 = uv.new_timer()
  t2:start(1, 0, function()
    results.held = {m:lock()}
    t2:close()
    shm.resume(me)
  end)
  shm.suspend()
  T.eq(results.held[1], nil)
  T.eq(results.held[3], shm.errno.EDEADLK)
  m:unlock()
end)

T.test("with: results, unlock on error, yields inside", function()
  local seg <close> = segment("with")
  local m = shm.mutex(seg, 0)
  m:init()
  local a, b = m:with(function(x, y) shm.sleep(0.01); return x + y, "two" end, 1, 2)
  T.eq(a, 3); T.eq(b, "two")
  T.eq(m:trylock(), true, "unlocked after with")
  m:unlock()
  local err = T.checkerr("boom", m.with, m, function() error("boom") end)
  T.eq(m:trylock(), true, "unlocked after an error in with")
  m:unlock()
  local tbl = {}
  local ok, e = pcall(m.with, m, function() error(tbl) end)
  T.eq(ok, false); T.eq(e, tbl, "the error object is rethrown as is")
  -- Another task waits while with's function sleeps.
  local order = {}
  shm.spawn(function() m:with(function() order[#order + 1] = "B" end) end)
  m:with(function() shm.sleep(0.05); order[#order + 1] = "A" end)
  T.ok(T.wait_until(function() return #order == 2 end, 2))
  T.eq(table.concat(order), "AB")
end)

-- A child shmhost that opens the segment, takes the lock, says so, and waits to be killed.
local HOLDER = [[
local shm = require "shmhost"
local seg = assert(shm.open(arg[1]))
local m = shm.mutex(seg, 0)
assert(m:lock())
seg:set("i32", 64, 1)   -- half way through an update
print("locked")
shm.sleep(60)
]]

local function killed_holder(name)
  local c = T.start_shmhost{"-e", HOLDER, name, timeout = 30}
  T.ok(T.wait_until(function() return c:output():find("locked", 1, true) end, 10), "child took the lock")
  c:kill("sigkill")
  c:wait()
  T.eq(c.signal, 9)
end

T.test("a holder killed while holding: the next lock returns owner-died", function()
  local seg <close> = segment("died")
  local m = shm.mutex(seg, 0)
  m:init()
  for round = 1, 3 do
    killed_holder(T.name("died"))
    local t0 = shm.now()
    local ok, why = m:lock(1)
    T.eq(ok, true); T.eq(why, "owner-died")
    T.ok(shm.now() - t0 < 1, "within a second")
    T.eq(seg:get("i32", 64), 1)
    seg:set("i32", 64, 0) -- the repair
    T.eq(m:unlock(), true)
    -- Already consistent: the next lock is plain.
    local ok2, why2 = m:lock()
    T.eq(ok2, true); T.eq(why2, nil)
    m:unlock()
  end
  -- trylock reports it too.
  killed_holder(T.name("died"))
  local ok, why = m:trylock()
  T.eq(ok, true); T.eq(why, "owner-died")
  m:unlock()
end)

T.test("with runs the owner-died hook, or warns on stderr", function()
  local seg <close> = segment("hook")
  local m = shm.mutex(seg, 0)
  m:init()
  killed_holder(T.name("hook"))
  local hooked = T.expect(1, function(mm)
    T.eq(mm, m)
    seg:set("i32", 64, 0)
  end)
  m:on_owner_died(hooked)
  T.eq(m:with(function() return seg:get("i32", 64) end), 0)
  -- Without a hook (a second process, so its stderr can be read), a warning line.
  killed_holder(T.name("hook"))
  local r = T.shmhost{"-e", [[
    local shm = require "shmhost"
    local seg = assert(shm.open(arg[1]))
    print(shm.mutex(seg, 0):with(function() return "ran" end))
  ]], T.name("hook"), timeout = 10}
  T.eq(r.code, 0, r.stderr)
  T.eq(r.stdout, "ran\n")
  T.ok(r.stderr:find("warning: mutex at offset 0", 1, true), "warning on stderr: " .. r.stderr)
  T.eq(m:trylock(), true)
  m:unlock()
  -- Through a layout view, each `d.lock` is a new object: the hook belongs to the segment
  -- and offset, so the one set through one object serves the next.
  local Shared = shm.layout{{"lock", "mutex"}}
  local d = Shared:view(seg)
  local viewhook = T.expect(1)
  d.lock:on_owner_died(viewhook)
  killed_holder(T.name("hook"))
  T.eq(d.lock:with(function() return "in" end), "in")
  m:on_owner_died(nil)
end)

T.test("processes incrementing under the mutex lose nothing", function()
  local seg <close> = segment("count")
  shm.mutex(seg, 0):init()
  local code = [[
    local shm = require "shmhost"
    local seg = assert(shm.open(arg[1]))
    local m = shm.mutex(seg, 0)
    for i = 1, 2000 do
      m:with(function()
        local v = seg:get("i64", 64)
        if i % 100 == 0 then coroutine.yield() end
        seg:set("i64", 64, v + 1)
      end)
    end
  ]]
  local children = {}
  for i = 1, 3 do children[i] = T.start_shmhost{"-e", code, T.name("count"), timeout = 60} end
  for _, c in ipairs(children) do
    c:wait()
    T.eq(c.code, 0, c.stderr)
  end
  T.eq(seg:get("i64", 64), 6000)
end)

T.done()
