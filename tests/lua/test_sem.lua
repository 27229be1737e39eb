-- shm.sem and shm.sem_open: every method and misuse, waits in tasks that leave the loop
-- running, closing under a waiter, other processes posting, and removal at exit.
local T = require "testlib"
local shm = require "shmhost"
local uv = require "luv"

local E = shm.errno

local function segment(tag, size)
  return assert(shm.open(T.name(tag), {create = true, excl = true, size = size or 4096}))
end

local function exists(name) return uv.fs_stat("/dev/shm/sem." .. name:sub(2)) ~= nil end

T.test("init, post, wait, trywait, value, timeouts", function()
  local seg <close> = segment("basic")
  local s = shm.sem(seg, 32)
  T.eq(tostring(s), "shmhost.sem (offset 32)")
  T.eq(s:init(2), true)
  T.eq(s:value(), 2)
  T.eq(s:wait(), true)
  T.eq(s:trywait(), true)
  local ok, why = s:trywait()
  T.eq(ok, false); T.eq(why, "busy")
  T.eq(s:value(), 0)
  local t0 = shm.now()
  local v, msg, errno = s:wait(0.1)
  T.eq(v, nil); T.eq(msg, "timeout"); T.eq(errno, E.ETIMEDOUT)
  T.ok(shm.now() - t0 >= 0.095, "waited the timeout")
  v, msg, errno = s:wait(0)
  T.eq(msg, "timeout")
  T.eq(s:post(), true)
  T.eq(s:post(), true)
  T.eq(s:value(), 2)
  T.eq(s:wait(1), true)
  T.eq(s:init(), true)
  T.eq(s:value(), 0)
  T.ok(shm.SEM_SIZE > 0)
  -- The largest value, then one more post: EOVERFLOW as nil, message, errno.
  T.eq(s:init(shm.SEM_VALUE_MAX), true)
  msg, errno = T.checkfail("sem_post semaphore at offset 32: ", s.post, s)
  T.eq(errno, E.EOVERFLOW)
  s:close()
end)

T.test("misuse raises and names the argument", function()
  local seg <close> = segment("misuse")
  T.checkerr("shmhost.segment expected, got nil", shm.sem, nil, 0)
  T.checkerr("bad argument #2", shm.sem, seg, {})
  T.checkerr("outside segment", shm.sem, seg, 4095)
  T.checkerr("outside segment", shm.sem, seg, -16)
  T.checkerr("not a multiple of", shm.sem, seg, 4)
  local s = shm.sem(seg, 0)
  T.checkerr("value must be", s.init, s, -1)
  T.checkerr("value must be", s.init, s, shm.SEM_VALUE_MAX + 1)
  T.checkerr("number has no integer representation", s.init, s, 1.5)
  s:init(0)
  T.checkerr("non-negative", s.wait, s, -0.5)
  T.checkerr("number expected", s.wait, s, "later")
  T.checkerr("shmhost.sem expected", s.post, seg)
  T.eq(s:close(), true)
  T.eq(s:close(), true)
  T.eq(tostring(s), "shmhost.sem (closed)")
  T.checkerr("semaphore is closed", s.post, s)
  T.checkerr("semaphore is closed", s.wait, s)
  T.checkerr("semaphore is closed", s.value, s)
  local s2 = shm.sem(seg, 64)
  s2:init(1)
  seg:close()
  T.checkerr("its segment is closed", s2.post, s2)
  T.checkerr("its segment is closed", s2.wait, s2)
end)

T.test("a semaphore in a read-only mapping can be read, not posted or waited on", function()
  local seg <close> = segment("ro")
  shm.sem(seg, 0):init(3)
  local ro <close> = assert(shm.open(T.name("ro"), {readonly = true}))
  local s = shm.sem(ro, 0)
  T.eq(s:value(), 3)
  T.checkerr("cannot post a semaphore in a read-only mapping", s.post, s)
  T.checkerr("read-only mapping", s.wait, s)
  T.checkerr("read-only mapping", s.trywait, s)
  T.checkerr("read-only mapping", s.init, s, 1)
end)

T.test("a segment truncated by a peer gives an error, not SIGBUS", function()
  local seg <close> = segment("trunc", 8192)
  local s = shm.sem(seg, 4096)
  s:init(1)
  local peer <close> = assert(shm.open(T.name("trunc")))
  assert(peer:resize(4096))
  T.checkerr("truncated", s.post, s)
end)

T.test("a wait outside a task is an error that says so, even with a unit there", function()
  local seg <close> = segment("notask")
  local s = shm.sem(seg, 0)
  s:init(1)
  local me = coroutine.running()
  local res = {}
  local t = uv.new_timer()
  t:start(1, 0, function()
    -- A unit is there, but a call that may wait needs a task: the misuse shows every time.
    res.ok, res.err = pcall(s.wait, s)
    res.try = s:wait(0) -- wait(0) is a try: allowed anywhere
    t:close()
    shm.resume(me)
  end)
  shm.suspend()
  T.eq(res.ok, false)
  T.ok(tostring(res.err):find("cannot wait outside a task", 1, true), res.err)
  T.eq(res.try, true)
end)

T.test("a waiting task leaves the loop running; a post wakes it", function()
  local seg <close> = segment("task")
  local s = shm.sem(seg, 0)
  s:init(0)
  local ticks = 0
  local timer = uv.new_timer()
  timer:start(5, 5, function() ticks = ticks + 1 end)
  shm.spawn(function() shm.sleep(0.2); s:post() end)
  local t0 = shm.now()
  T.eq(s:wait(), true)
  local dt = shm.now() - t0
  timer:stop(); timer:close()
  T.ok(dt >= 0.19 and dt < 2, "woke after the post: " .. dt)
  T.ok(ticks >= 10, "the timer kept ticking: " .. ticks)
  -- A timed wait that a post ends early.
  shm.spawn(function() shm.sleep(0.05); s:post() end)
  T.eq(s:wait(5), true)
  T.ok(shm.now() - t0 < 2)
  -- A timed wait that runs out in the thread.
  local v, msg, errno = s:wait(0.15)
  T.eq(msg, "timeout"); T.eq(errno, E.ETIMEDOUT)
end)

T.test("one waiter per object; two objects for one semaphore both wait", function()
  local seg <close> = segment("two")
  local s = shm.sem(seg, 0)
  s:init(0)
  local got = 0
  shm.spawn(function() if s:wait(5) then got = got + 1 end end)
  shm.sleep(0.02)
  T.checkerr("another task is already waiting", s.wait, s)
  local s2 = shm.sem(seg, 0)
  shm.spawn(function() if s2:wait(5) then got = got + 1 end end)
  shm.sleep(0.02)
  s:post(); s:post()
  T.ok(T.wait_until(function() return got == 2 end, 3), "both woke")
  T.eq(s:value(), 0)
end)

T.test("closing a semaphore a task waits on resumes it with nil, 'closed'", function()
  local seg <close> = segment("close")
  local s = shm.sem(seg, 0)
  s:init(0)
  local r
  shm.spawn(function() r = table.pack(s:wait()) end)
  shm.sleep(0.05)
  T.eq(s:close(), true)
  T.ok(T.wait_until(function() return r ~= nil end, 2))
  T.eq(r[1], nil); T.eq(r[2], "closed")
  -- The thread gave back nothing it did not take: the value is still 0 for others.
  T.eq(shm.sem(seg, 0):value(), 0)
end)

T.test("closing the segment under a waiting task is safe; the wait still works", function()
  local seg = segment("segclose")
  local s = shm.sem(seg, 0)
  s:init(0)
  local r
  shm.spawn(function() r = table.pack(s:wait(0.3)) end)
  shm.sleep(0.05)
  seg:close() -- the waiting thread has a mapping of its own: no SIGSEGV
  T.ok(T.wait_until(function() return r ~= nil end, 3))
  T.eq(r[2], "timeout")
  T.checkerr("its segment is closed", s.post, s)
end)

T.test("a peer truncating the segment under a waiting task: an error, not SIGBUS", function()
  local seg <close> = segment("waittrunc", 8192)
  local s = shm.sem(seg, 4096)
  s:init(0)
  local r
  shm.spawn(function() r = table.pack(pcall(s.wait, s, 5)) end)
  shm.sleep(0.05)
  local peer <close> = assert(shm.open(T.name("waittrunc")))
  assert(peer:resize(4096))
  T.ok(T.wait_until(function() return r ~= nil end, 3))
  T.eq(r[1], false)
  T.ok(tostring(r[2]):find("truncated by a peer", 1, true), r[2])
end)

T.test("many waits at once do not starve luv's thread pool", function()
  local seg <close> = segment("pool")
  local sems = {}
  for i = 1, 8 do
    sems[i] = shm.sem(seg, (i - 1) * 64)
    sems[i]:init(0)
    shm.spawn(function() sems[i]:wait(10) end)
  end
  shm.sleep(0.02)
  -- File operations run on libuv's 4 pool threads: they still complete.
  local me = coroutine.running()
  uv.fs_stat("/", function(err, st) shm.resume(me, err, st and st.type) end)
  local err, tp = shm.suspend()
  T.eq(err, nil); T.eq(tp, "directory")
  for i = 1, 8 do sems[i]:post() end
  T.ok(T.wait_until(function()
    for i = 1, 8 do if sems[i]:value() ~= 0 then return false end end
    return true
  end, 3))
end)

T.test("another process posts; the waiting task wakes", function()
  local seg <close> = segment("proc")
  local s = shm.sem(seg, 0)
  s:init(0)
  local c = T.start_shmhost{"-e", [[
    local shm = require "shmhost"
    local seg = assert(shm.open(arg[1]))
    shm.sleep(0.1)
    assert(shm.sem(seg, 0):post())
  ]], T.name("proc"), timeout = 10}
  T.eq(s:wait(5), true)
  c:wait()
  T.eq(c.code, 0, c.stderr)
end)

T.test("two processes alternate on two semaphores without losing a turn", function()
  local seg <close> = segment("alt")
  local a, b = shm.sem(seg, 0), shm.sem(seg, 64)
  a:init(1); b:init(0)
  local N = 2000
  local c = T.start_shmhost{"-e", [[
    local shm = require "shmhost"
    local seg = assert(shm.open(arg[1]))
    local a, b = shm.sem(seg, 0), shm.sem(seg, 64)
    for i = 1, tonumber(arg[2]) do
      assert(b:wait(10))
      seg:set("i64", 128, seg:get("i64", 128) + 1)
      a:post()
    end
  ]], T.name("alt"), tostring(N), timeout = 60}
  for i = 1, N do
    assert(a:wait(10))
    T.eq(seg:get("i64", 128), 2 * (i - 1))
    seg:set("i64", 128, seg:get("i64", 128) + 1)
    b:post()
  end
  assert(a:wait(10))
  c:wait()
  T.eq(c.code, 0, c.stderr)
  T.eq(seg:get("i64", 128), 2 * N)
end)

T.test("sem_open: create, excl, open, values, names", function()
  local name = T.name("named")
  local s = assert(shm.sem_open(name, {create = true, excl = true, value = 2, mode = "0640"}))
  T.eq(s.name, name); T.eq(s.created, true)
  T.eq(tostring(s), "shmhost.sem (" .. name .. ")")
  T.eq(uv.fs_stat("/dev/shm/sem." .. name:sub(2)).mode & 511, 416)
  T.eq(s:value(), 2)
  local msg, errno = T.checkfail("sem_open " .. name .. ": File exists", shm.sem_open, name, {create = true, excl = true})
  T.eq(errno, E.EEXIST)
  local s2 = assert(shm.sem_open(name))
  T.eq(s2.created, false)
  T.eq(s2:wait(), true)
  T.eq(s:value(), 1)
  s2:close()
  T.ok(exists(name), "closing an opened one removes nothing")
  s:close()
  T.ok(not exists(name), "closing the created one removes it")
  msg, errno = T.checkfail("sem_open " .. name .. ": No such file", shm.sem_open, name)
  T.eq(errno, E.ENOENT)
  T.checkerr("must start with '/'", shm.sem_open, "noslash")
  T.checkerr("must not contain '/'", shm.sem_open, "/a/b")
  T.checkerr("too long", shm.sem_open, "/" .. string.rep("x", 300))
  T.checkerr("string expected", shm.sem_open, 5)
  T.checkerr("unknown option 'creat'", shm.sem_open, name, {creat = true})
  T.checkerr("option 'value' must be", shm.sem_open, name, {create = true, value = -1})
  T.checkerr("octal mode", shm.sem_open, name, {create = true, mode = "rw"})
  T.checkerr("only a named semaphore", function()
    local seg <close> = segment("nn")
    local u = shm.sem(seg, 0)
    u:unlink()
  end)
end)

T.test("sem_open: a named semaphore in a task wait, keep and unlink", function()
  local name = T.name("kept")
  local s = assert(shm.sem_open(name, {create = true, value = 0, keep = true}))
  shm.spawn(function() shm.sleep(0.05); s:post() end)
  T.eq(s:wait(2), true)
  s:close()
  T.ok(exists(name), "kept")
  local s2 = assert(shm.sem_open(name))
  T.eq(s2:unlink(), true)
  T.ok(not exists(name))
  T.checkfail("sem_unlink", s2.unlink, s2)
  s2:close()
  local s3 = assert(shm.sem_open(name, {create = true}))
  T.eq(s3:keep(), true)
  s3:close()
  T.ok(exists(name))
  local s4 = assert(shm.sem_open(name))
  s4:unlink()
  s4:close()
end)

T.test("named semaphores created by a process are removed when it exits, unless kept", function()
  local n1, n2 = T.name("exit1"), T.name("exit2")
  local r = T.shmhost{"-e", [[
    local shm = require "shmhost"
    local a = assert(shm.sem_open(arg[1], {create = true}))
    local b = assert(shm.sem_open(arg[2], {create = true, keep = true}))
    print(a.created, b.created)
  ]], n1, n2, timeout = 10}
  T.eq(r.code, 0, r.stderr)
  T.eq(r.stdout, "true\ttrue\n")
  T.ok(not exists(n1), "removed at exit")
  T.ok(exists(n2), "kept")
  assert(shm.sem_open(n2)):unlink()
end)

T.test("exit while a task waits: the thread ends and the process exits at once", function()
  local seg <close> = segment("exitwait")
  local t0 = shm.now()
  local r = T.shmhost{"-e", [[
    local shm = require "shmhost"
    local seg = assert(shm.open(arg[1]))
    local s = shm.sem(seg, 0)
    s:init(0)
    local n = assert(shm.sem_open(arg[2], {create = true}))
    shm.spawn(function() s:wait() end)
    shm.spawn(function() n:wait() end)
    shm.sleep(0.1)
    shm.exit(3)
  ]], T.name("exitwait"), T.name("exitsem"), timeout = 10}
  T.eq(r.code, 3, r.stderr)
  T.eq(r.stderr, "")
  T.ok(shm.now() - t0 < 3, "exited promptly")
  T.ok(not exists(T.name("exitsem")))
  -- A script whose only task waits forever is killed by its deadline, never a crash; here
  -- it is told to stop with SIGTERM and cleans up.
  local c = T.start_shmhost{"-e", [[
    local shm = require "shmhost"
    local n = assert(shm.sem_open(arg[1], {create = true}))
    print("waiting")
    n:wait()
  ]], T.name("termsem"), timeout = 10}
  T.ok(T.wait_until(function() return c:output():find("waiting", 1, true) end, 5))
  c:kill("sigterm")
  c:wait()
  T.eq(c.code, 128 + 15, c.stderr)
  T.ok(not exists(T.name("termsem")))
end)

T.test("waiting threads of idle objects end by themselves", function()
  local function threads()
    local n, h = 0, uv.fs_scandir("/proc/self/task")
    while h and uv.fs_scandir_next(h) do n = n + 1 end
    return n
  end
  local seg <close> = segment("idle")
  local base = threads()
  local keep = {}
  for i = 1, 10 do
    local s = shm.sem(seg, 0) -- a new object each time, as a layout view gives
    s:init(0)
    shm.spawn(function() shm.sleep(0.01); s:post() end)
    T.eq(s:wait(2), true)
    keep[i] = s
  end
  T.ok(threads() >= base + 10, "one thread per object that waited")
  T.ok(T.wait_until(function() return threads() <= base end, 5), "idle threads ended")
  -- An object whose thread ended waits again.
  shm.spawn(function() shm.sleep(0.01); keep[1]:post() end)
  T.eq(keep[1]:wait(2), true)
end)

T.test("garbage collection of a semaphore with its thread", function()
  local seg <close> = segment("gc")
  do
    local s = shm.sem(seg, 0)
    s:init(0)
    shm.spawn(function() s:wait(0.05) end)
    shm.sleep(0.1)
  end
  collectgarbage(); collectgarbage()
  shm.sleep(0.01)
  T.eq(shm.sem(seg, 0):value(), 0)
end)

T.done()
