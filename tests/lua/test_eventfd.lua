-- shm.eventfd: counting, semaphore mode, waiting in tasks, callbacks, close, misuse, and a
-- wake-up from another process.
local T = require "testlib"
local shm = require "shmhost"
local uv = require "luv"

T.test("notify adds, try and wait read and reset the count", function()
  local ev <close> = assert(shm.eventfd())
  T.eq(ev:try(), nil, "nothing yet")
  T.eq(ev:notify(), true)
  T.eq(ev:notify(4), true)
  T.eq(ev:try(), 5)
  T.eq(ev:try(), nil, "a read resets the counter")
  ev:notify(2)
  T.eq(ev:wait(), 2, "wait returns at once when the count is there")
  T.ok(math.type(ev:fd()) == "integer" and ev:fd() > 2)
  T.ok(tostring(ev):find("shmhost.eventfd (fd", 1, true))
end)

T.test("init and semaphore mode", function()
  local ev <close> = assert(shm.eventfd{init = 3, semaphore = true})
  T.eq(ev:try(), 1)
  T.eq(ev:wait(), 1)
  T.eq(ev:try(), 1)
  T.eq(ev:try(), nil)
  local ev2 <close> = assert(shm.eventfd{init = 7})
  T.eq(ev2:try(), 7)
end)

T.test("the descriptor is non-blocking and close-on-exec", function()
  local ev <close> = assert(shm.eventfd())
  local fdinfo = io.open("/proc/self/fdinfo/" .. ev:fd()):read("a")
  local flags = tonumber(fdinfo:match("flags:%s*(%d+)"), 8)
  T.ok(flags & 04000 ~= 0, "O_NONBLOCK")
  T.ok(flags & 02000000 ~= 0, "O_CLOEXEC")
  T.eq(uv.fs_readlink("/proc/self/fd/" .. ev:fd()), "anon_inode:[eventfd]")
end)

T.test("counter overflow is nil, message, EAGAIN", function()
  local ev <close> = assert(shm.eventfd())
  T.eq(ev:notify(math.maxinteger), true)
  T.eq(ev:notify(math.maxinteger), true)
  -- 2^64 - 2 is the largest count: it now holds 2^64 - 2, and one more would block.
  local msg, errno = T.checkfail("notify eventfd", ev.notify, ev, 1)
  T.eq(errno, shm.errno.EAGAIN)
  T.ok(msg:find("temporarily unavailable", 1, true), msg)
  T.eq(ev:try(), -2, "2^64 - 2 wraps as an unsigned 64-bit value does")
end)

T.test("wait yields the task until another task notifies", function()
  local ev <close> = assert(shm.eventfd())
  local order = {}
  shm.spawn(function()
    order[#order + 1] = "notifier"
    shm.sleep(0.03)
    ev:notify(6)
  end)
  local t0 = shm.now()
  local n = ev:wait()
  order[#order + 1] = "woken"
  T.eq(n, 6)
  T.ok(shm.now() - t0 >= 0.025, "waited for the notification")
  T.eq(table.concat(order, ","), "notifier,woken")
end)

T.test("a luv timer keeps running while a task waits", function()
  local ev <close> = assert(shm.eventfd())
  local ticks = 0
  local t = uv.new_timer()
  t:start(5, 5, function()
    ticks = ticks + 1
    if ticks == 3 then ev:notify(1) t:close() end
  end)
  T.eq(ev:wait(), 1)
  T.eq(ticks, 3)
end)

T.test("on calls fn(count) as a task on every wake-up; on(nil) stops", function()
  local ev <close> = assert(shm.eventfd())
  local got = {}
  local cb = T.expect(3, function(n)
    got[#got + 1] = n
    -- The callback is a task: it may wait.
    shm.sleep(0.001)
  end)
  T.eq(ev:on(cb), true)
  ev:notify(1)
  T.ok(T.wait_until(function() return #got == 1 end, 2))
  ev:notify(2)
  ev:notify(3)
  T.ok(T.wait_until(function() return #got == 2 end, 2))
  T.eq(got[2], 5, "notifications between wake-ups add up")
  ev:notify(1)
  T.ok(T.wait_until(function() return #got == 3 end, 2))
  T.eq(ev:on(nil), true)
  ev:notify(9)
  shm.sleep(0.03)
  T.eq(#got, 3, "no call after on(nil)")
  T.eq(ev:try(), 9, "the count waits for a reader after on(nil)")
end)

T.test("close wakes the waiting task with nil, 'closed'", function()
  local ev = assert(shm.eventfd())
  shm.spawn(function() shm.sleep(0.02) ev:close() end)
  local v, msg = ev:wait()
  T.eq(v, nil)
  T.eq(msg, "closed")
  T.eq(ev:close(), true, "close is idempotent")
  T.ok(tostring(ev):find("closed", 1, true))
end)

T.test("misuse raises and names the argument", function()
  local ev = assert(shm.eventfd())
  T.checkerr("count must be a positive integer", ev.notify, ev, 0)
  T.checkerr("count must be a positive integer", ev.notify, ev, -3)
  T.checkerr("number has no integer representation", ev.notify, ev, 1.5)
  T.checkerr("number expected", ev.notify, ev, "x")
  T.checkerr("function expected", ev.on, ev, 42)
  T.checkerr("unknown option 'nit'", shm.eventfd, {nit = 1})
  T.checkerr("option 'init' must be", shm.eventfd, {init = -1})
  T.checkerr("option 'init' must be", shm.eventfd, {init = 1 << 32})
  T.checkerr("option 'semaphore' must be a boolean", shm.eventfd, {semaphore = 1})
  T.checkerr("shmhost.eventfd expected", ev.notify, 42)
  -- Two waiters, or a waiter and a callback, would split the wake-ups: refused.
  shm.spawn(function() ev:wait() end)
  shm.sleep(0)
  T.checkerr("another task is already waiting", ev.wait, ev)
  T.checkerr("a task is waiting", ev.on, ev, function() end)
  ev:notify()
  shm.sleep(0.01)
  ev:on(function() end)
  T.checkerr("has a callback", ev.wait, ev)
  ev:on(nil)
  ev:close()
  for _, m in ipairs({"notify", "wait", "try", "on", "fd"}) do
    T.checkerr("eventfd is closed", ev[m], ev)
  end
end)

T.test("waiting outside a task is an error that says so", function()
  local ev <close> = assert(shm.eventfd())
  local co = coroutine.create(function() return ev:wait() end)
  local ok, err = coroutine.resume(co)
  T.eq(ok, false)
  T.ok(err:find("ev:wait: cannot wait outside a task", 1, true), err)
end)

T.test("collected and to-be-closed objects close their descriptor", function()
  local fd
  do
    local ev <close> = assert(shm.eventfd())
    fd = ev:fd()
  end
  T.eq(uv.fs_readlink("/proc/self/fd/" .. fd), nil, "closed by __close")
  local ev = assert(shm.eventfd())
  fd = ev:fd()
  ev = nil
  collectgarbage()
  collectgarbage()
  T.eq(uv.fs_readlink("/proc/self/fd/" .. fd), nil, "closed by __gc")
end)

T.test("an eventfd with a callback stays alive without other references until on(nil)", function()
  local got = 0
  local notify_fd
  do
    local ev = assert(shm.eventfd())
    ev:on(function(n) got = got + n end)
    notify_fd = ev:fd()
  end
  collectgarbage() collectgarbage()
  T.eq(uv.fs_readlink("/proc/self/fd/" .. notify_fd), "anon_inode:[eventfd]", "still open")
  -- Wake it through its descriptor number, as a peer holding a copy would.
  uv.fs_write(notify_fd, string.pack("=I8", 4))
  T.ok(T.wait_until(function() return got == 4 end, 2), "the callback still runs")
  local e2 = assert(shm.eventfd())
  local fd2 = e2:fd()
  e2:on(function() end)
  e2:on(nil)
  e2 = nil
  collectgarbage() collectgarbage()
  T.eq(uv.fs_readlink("/proc/self/fd/" .. fd2), nil, "collected once the callback is gone")
end)

T.test("an idle eventfd does not keep the process alive; ev:on does until stopped", function()
  local r = T.shmhost{"-e", [[
    local ev = shmhost.eventfd()
    print("idle done")]], timeout = 10}
  T.eq(r.code, 0)
  T.eq(r.stdout, "idle done\n")
  r = T.shmhost{"-e", [[
    local uv = require "luv"
    local ev = shmhost.eventfd()
    local n = 0
    ev:on(function(c) n = n + c if n >= 3 then ev:on(nil) print("stopped", n) end end)
    local t = uv.new_timer()
    t:start(5, 5, function() ev:notify(1) if n >= 2 then t:close() end end)
    print("main returned")]], timeout = 10}
  T.eq(r.code, 0, r.stderr)
  T.eq(r.stdout, "main returned\nstopped\t3\n")
end)

T.test("a task waiting at exit does not hang shutdown", function()
  local r = T.shmhost{"-e", [[
    local ev = shmhost.eventfd()
    shmhost.spawn(function() ev:wait() print("not reached") end)
    shmhost.sleep(0.02)
    shmhost.exit(0)]], timeout = 10}
  T.eq(r.code, 0, r.stderr)
  T.eq(r.stdout, "")
end)

T.done()
