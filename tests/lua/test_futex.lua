-- seg:futex_wait and seg:futex_wake: wakes from another task and from another process,
-- timeouts, "changed", misuse, read-only mappings, closing the segment under a waiter, peers
-- that truncate the segment, and waits that leave the loop running.
local T = require "testlib"
local shm = require "shmhost"
local uv = require "luv"

local E = shm.errno

local function segment(tag, size)
  return assert(shm.open(T.name(tag), {create = true, excl = true, size = size or 4096}))
end

local function threads()
  local n, h = 0, uv.fs_scandir("/proc/self/task")
  while h and uv.fs_scandir_next(h) do n = n + 1 end
  return n
end

T.test("a check: changed, timeout; a wake with nobody waiting wakes 0", function()
  local seg <close> = segment("check")
  seg:store("u32", 8, 7)
  local v, msg, errno = seg:futex_wait(8, 6, 0)
  T.eq(v, nil); T.eq(msg, "changed"); T.eq(errno, E.EAGAIN)
  -- "changed" comes at once even without a timeout: the word is looked at first.
  v, msg, errno = seg:futex_wait(8, 6)
  T.eq(msg, "changed"); T.eq(errno, E.EAGAIN)
  v, msg, errno = seg:futex_wait(8, 7, 0)
  T.eq(v, nil); T.eq(msg, "timeout"); T.eq(errno, E.ETIMEDOUT)
  T.eq(seg:futex_wake(8), 0)
  T.eq(seg:futex_wake(8, 100), 0)
  -- i32 and u32 spellings of the same word both match.
  seg:store("u32", 12, 0xffffffff)
  T.eq(select(2, seg:futex_wait(12, -1, 0)), "timeout")
  T.eq(select(2, seg:futex_wait(12, 0xffffffff, 0)), "timeout")
end)

T.test("a timed wait runs out in the thread and leaves the loop running", function()
  local seg <close> = segment("timeout")
  local ticks = 0
  local timer = uv.new_timer()
  timer:start(5, 5, function() ticks = ticks + 1 end)
  local t0 = shm.now()
  local v, msg, errno = seg:futex_wait(0, 0, 0.2)
  local dt = shm.now() - t0
  timer:stop(); timer:close()
  T.eq(v, nil); T.eq(msg, "timeout"); T.eq(errno, E.ETIMEDOUT)
  T.ok(dt >= 0.195 and dt < 2, "waited the timeout: " .. dt)
  T.ok(ticks >= 10, "the timer kept ticking: " .. ticks)
  -- Shorter than the spin: still the timeout, on time.
  v, msg = seg:futex_wait(0, 0, 1e-6)
  T.eq(msg, "timeout")
end)

T.test("another task wakes the waiting task", function()
  local seg <close> = segment("task")
  -- A wake without a change: only the wake can end the wait.
  local woken
  shm.spawn(function()
    T.wait_until(function()
      woken = seg:futex_wake(64)
      return woken > 0
    end, 5, 0.01)
  end)
  local t0 = shm.now()
  T.eq(seg:futex_wait(64, 0, 5), true)
  T.eq(woken, 1)
  T.ok(shm.now() - t0 < 4)
  -- The usual protocol: change the word, then wake.
  shm.spawn(function() shm.sleep(0.05); seg:store("u32", 64, 1); seg:futex_wake(64) end)
  T.eq(seg:futex_wait(64, 0), true)
  T.eq(seg:load("u32", 64), 1)
end)

T.test("several tasks wait on one segment; wake(n) wakes n of them", function()
  local seg <close> = segment("many")
  local done = {}
  for i = 1, 3 do
    shm.spawn(function() done[i] = seg:futex_wait(0, 0, 10) end)
  end
  shm.spawn(function() done[4] = seg:futex_wait(4, 0, 10) end) -- another word
  -- Waiters not asleep yet are not counted (nor woken): ask for what is still missing.
  local woken = 0
  T.ok(T.wait_until(function()
    local n = seg:futex_wake(0, 2 - woken)
    T.ok(n <= 2 - woken, "woke more than asked")
    woken = woken + n
    return woken == 2
  end, 5, 0.01))
  local function count()
    local n = 0
    for i = 1, 3 do if done[i] then n = n + 1 end end
    return n
  end
  T.ok(T.wait_until(function() return count() == 2 end, 5), "two of three woke")
  shm.sleep(0.02)
  T.eq(count(), 2, "the third sleeps on")
  T.eq(done[4], nil, "the other word's waiter sleeps on")
  T.ok(T.wait_until(function() return seg:futex_wake(0, math.maxinteger) == 0 and
    done[1] and done[2] and done[3] end, 5, 0.01), "the third woke")
  T.ok(T.wait_until(function() seg:futex_wake(4); return done[4] end, 5, 0.01))
end)

T.test("another process wakes the waiting task", function()
  local seg <close> = segment("proc")
  local c = T.start_shmhost{"-e", [[
    local shm = require "shmhost"
    local seg = assert(shm.open(arg[1]))
    shm.sleep(0.1)
    seg:store("u32", 128, 5)
    print(seg:futex_wake(128))
  ]], T.name("proc"), timeout = 10}
  T.eq(seg:futex_wait(128, 0, 5), true)
  T.eq(seg:load("u32", 128), 5)
  c:wait()
  T.eq(c.code, 0, c.stderr)
  -- Nothing to wake when we were not asleep yet; otherwise one waiter.
  T.ok(c.stdout == "1\n" or c.stdout == "0\n", c.stdout)
end)

T.test("two processes hand a word back and forth, each side sleeping on the futex", function()
  local seg <close> = segment("pingpong")
  local N = 300
  -- Word 0: ping count seen by the peer; word 4: pong count. Each side waits for its turn.
  local c = T.start_shmhost{"-e", [[
    local shm = require "shmhost"
    local seg = assert(shm.open(arg[1]))
    for i = 1, tonumber(arg[2]) do
      while seg:load("u32", 0) ~= i do
        local ok, why = seg:futex_wait(0, i - 1, 10)
        assert(ok or why == "changed", why)
      end
      seg:store("u32", 4, i)
      seg:futex_wake(4)
    end
  ]], T.name("pingpong"), tostring(N), timeout = 60}
  for i = 1, N do
    seg:store("u32", 0, i)
    seg:futex_wake(0)
    while seg:load("u32", 4) ~= i do
      local ok, msg = seg:futex_wait(4, i - 1, 10)
      T.ok(ok or msg == "changed", msg)
    end
  end
  c:wait()
  T.eq(c.code, 0, c.stderr)
end)

T.test("misuse raises and names the argument", function()
  local seg <close> = segment("misuse")
  T.checkerr("shmhost.segment expected", seg.futex_wait, nil, 0, 0)
  T.checkerr("bad argument #2", seg.futex_wait, seg, "x", 0)
  T.checkerr("bad argument #3", seg.futex_wait, seg, 0)
  T.checkerr("32-bit value", seg.futex_wait, seg, 0, 1 << 32)
  T.checkerr("32-bit value", seg.futex_wait, seg, 0, -(1 << 31) - 1)
  T.checkerr("number has no integer representation", seg.futex_wait, seg, 0, 1.5)
  T.checkerr("outside segment", seg.futex_wait, seg, 4096, 0, 0)
  T.checkerr("outside segment", seg.futex_wait, seg, 4094, 0, 0)
  T.checkerr("outside segment", seg.futex_wait, seg, -4, 0, 0)
  T.checkerr("not a multiple of 4", seg.futex_wait, seg, 2, 0, 0)
  -- Called as a method, Lua counts the offset as argument #1.
  T.checkerr("bad argument #1 to 'futex_wait' (offset 6 is not a multiple of 4", function() return seg:futex_wait(6, 0, 0) end)
  T.checkerr("non-negative", seg.futex_wait, seg, 0, 0, -1)
  T.checkerr("number expected", seg.futex_wait, seg, 0, 0, "soon")
  T.checkerr("outside segment", seg.futex_wake, seg, 4096)
  T.checkerr("not a multiple of 4", seg.futex_wake, seg, 1)
  T.checkerr("at least 1", seg.futex_wake, seg, 0, 0)
  T.checkerr("bad argument #3", seg.futex_wake, seg, 0, "all")
  local gone = segment("misuse2")
  gone:close()
  T.checkerr("is closed", gone.futex_wait, gone, 0, 0, 0)
  T.checkerr("is closed", gone.futex_wake, gone, 0)
end)

T.test("a wait outside a task raises, even when the word has changed; a check works", function()
  local seg <close> = segment("notask")
  local me = coroutine.running()
  local res = {}
  local t = uv.new_timer()
  t:start(1, 0, function()
    res.ok, res.err = pcall(seg.futex_wait, seg, 0, 1)
    res.ok2, res.err2 = pcall(seg.futex_wait, seg, 0, 0, 5)
    res.check = table.pack(seg:futex_wait(0, 0, 0))
    res.wake = seg:futex_wake(0)
    t:close()
    shm.resume(me)
  end)
  shm.suspend()
  T.eq(res.ok, false)
  T.ok(tostring(res.err):find("cannot wait outside a task", 1, true), res.err)
  T.eq(res.ok2, false)
  T.eq(res.check[2], "timeout")
  T.eq(res.wake, 0)
end)

T.test("a read-only mapping may wait and wake", function()
  local seg <close> = segment("ro")
  local ro <close> = assert(shm.open(T.name("ro"), {readonly = true}))
  T.eq(ro.readonly, true)
  shm.spawn(function() shm.sleep(0.05); seg:store("u32", 16, 1); seg:futex_wake(16) end)
  T.eq(ro:futex_wait(16, 0, 5), true)
  local got
  shm.spawn(function() got = seg:futex_wait(20, 0, 5) end)
  T.ok(T.wait_until(function() return ro:futex_wake(20) == 1 end, 5, 0.01))
  T.ok(T.wait_until(function() return got end, 2))
end)

T.test("System V and memfd segments", function()
  local sv = assert(shm.sysv(shm.IPC_PRIVATE, {create = true, size = 4096}))
  shm.spawn(function() shm.sleep(0.05); sv:store("u32", 0, 1); sv:futex_wake(0) end)
  T.eq(sv:futex_wait(0, 0, 5), true)
  sv:close()
  local mf <close> = assert(shm.memfd("futex", {size = 4096}))
  shm.spawn(function() shm.sleep(0.05); mf:store("u32", 0, 1); mf:futex_wake(0) end)
  T.eq(mf:futex_wait(0, 0, 5), true)
end)

T.test("closing the segment under waiting tasks resumes them with nil, 'closed'", function()
  local seg = segment("close")
  local r1, r2
  shm.spawn(function() r1 = table.pack(seg:futex_wait(0, 0)) end)
  shm.spawn(function() r2 = table.pack(seg:futex_wait(8, 0, 30)) end)
  shm.sleep(0.05)
  T.eq(seg:close(), true)
  -- Resumed at once, not after the threads' slice: the wakes were queued before this task
  -- gives the others one turn.
  coroutine.yield()
  T.ok(r1 and r2, "resumed at once")
  T.eq(r1[1], nil); T.eq(r1[2], "closed")
  T.eq(r2[1], nil); T.eq(r2[2], "closed")
  T.checkerr("is closed", seg.futex_wait, seg, 0, 0, 0)
  -- detach() ends waits the same way.
  local s2 = segment("detach")
  local r3
  shm.spawn(function() r3 = table.pack(s2:futex_wait(0, 0)) end)
  shm.sleep(0.05)
  s2:detach()
  T.ok(T.wait_until(function() return r3 end, 2))
  T.eq(r3[2], "closed")
  assert(shm.open(T.name("detach"))):unlink()
end)

T.test("a peer truncating the segment under a waiting task: an error, not SIGBUS", function()
  local seg <close> = segment("trunc", 8192)
  local r
  shm.spawn(function() r = table.pack(pcall(seg.futex_wait, seg, 4096, 0, 5)) end)
  shm.sleep(0.05)
  local peer <close> = assert(shm.open(T.name("trunc")))
  assert(peer:resize(4096))
  -- The sleeping thread is told within a slice: the kernel answers EFAULT there.
  shm.sleep(0.1)
  T.ok(T.wait_until(function() return r ~= nil end, 3))
  T.eq(r[1], false)
  T.ok(tostring(r[2]):find("truncated by a peer", 1, true), r[2])
  T.checkerr("truncated by a peer", seg.futex_wake, seg, 4096)
end)

T.test("an exit while tasks wait ends at once; idle threads end by themselves", function()
  local t0 = shm.now()
  local r = T.shmhost{"-e", [[
    local shm = require "shmhost"
    local seg = assert(shm.open(arg[1], {create = true, size = 4096}))
    shm.spawn(function() seg:futex_wait(0, 0) end)
    shm.spawn(function() seg:futex_wait(4, 0) end)
    shm.sleep(0.1)
    shm.exit(3)
  ]], T.name("exitwait"), timeout = 10}
  T.eq(r.code, 3, r.stderr)
  T.eq(r.stderr, "")
  T.ok(shm.now() - t0 < 3, "exited promptly")
  T.ok(not uv.fs_stat("/dev/shm/" .. T.name("exitwait"):sub(2)), "removed at exit")
  -- Threads of waits that ended stay IDLE seconds for the next wait, then end.
  local seg <close> = segment("idle")
  local base = threads()
  local n = 0
  for i = 1, 3 do shm.spawn(function() if seg:futex_wait(i * 4, 0, 0.05) == nil then n = n + 1 end end) end
  T.ok(T.wait_until(function() return n == 3 end, 3))
  T.ok(threads() >= base + 3, "one thread per waiting task")
  T.ok(T.wait_until(function() return threads() <= base end, 5), "idle threads ended")
  -- The next wait starts a thread again.
  shm.spawn(function() shm.sleep(0.05); seg:store("u32", 4, 1); seg:futex_wake(4) end)
  T.eq(seg:futex_wait(4, 0, 5), true)
end)

T.test("a segment grown after a wait: the next wait maps it again", function()
  local seg <close> = segment("grow")
  T.eq(select(2, seg:futex_wait(0, 0, 0.01)), "timeout")
  assert(seg:resize(3 * 4096))
  shm.spawn(function() shm.sleep(0.05); seg:store("u32", 8192, 1); seg:futex_wake(8192) end)
  T.eq(seg:futex_wait(8192, 0, 5), true)
end)

T.test("garbage collection of a segment whose threads are idle", function()
  do
    local seg = segment("gc")
    seg:futex_wait(0, 0, 0.02)
    seg:unlink()
  end
  collectgarbage(); collectgarbage()
  shm.sleep(0.01)
end)

T.done()
