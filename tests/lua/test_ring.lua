-- The ring binding: messages of every length, flow control between tasks, waiting with a
-- timeout, misuse that must raise, a ring that is not one, close while a task waits, and real
-- peer processes that stream, close, or die.
local T = require "testlib"
local shm = require "shmhost"
local uv = require "luv"

local function segment(tag, size)
  return assert(shm.open(T.name(tag), {create = true, size = size or 65536}))
end

T.test("create, attach, push and pop every length 0..300", function()
  local seg <close> = segment("len", 4096)
  local r = shm.ring.create(seg, 64, 1000)
  local a = assert(shm.ring.attach(seg, 64))
  T.eq(r:capacity(), 1000)
  T.eq(a:capacity(), 1000)
  T.eq(shm.ring.footprint(1000), shm.ring.HEADER + 1000)
  for round = 1, 3 do
    for n = 0, 300 do
      local s = string.rep(string.char((n + round) % 256), n) .. ""
      T.eq(r:push(s), true)
      T.eq(a:pop(), s)
      T.eq(a:used(), 0)
    end
  end
  -- Binary bytes, NULs included, go through unchanged.
  local bin = "\0\1\2\255\0x\0"
  T.ok(r:push(bin))
  T.eq(a:pop(), bin)
  T.eq(a:pop(), nil)
  r:close()
  a:close()
end)

T.test("full and empty edges", function()
  local seg <close> = segment("edge", 4096)
  local r = shm.ring.create(seg, 0, 64)
  T.eq(r:peer("producer"), "absent")
  T.eq(r:pop(), nil)
  T.eq(r:peer("producer"), "absent")
  local st, pid = r:peer("consumer") -- pop took the consumer's side
  T.eq(st, "alive")
  T.eq(pid, shm.pid())
  T.checkerr("bad argument #1", function() r:peer("bogus") end)
  T.eq(r:push(string.rep("x", 56)), true) -- 8 + 56 is exactly the capacity
  T.eq(r:used(), 64)
  T.eq(r:push(""), false)
  T.eq(r:pop(), string.rep("x", 56))
  for _ = 1, 8 do T.eq(r:push(""), true) end
  T.eq(r:push(""), false)
  for _ = 1, 8 do T.eq(r:pop(), "") end
  T.eq(r:pop(), nil)
  T.checkerr("can never fit", r.push, r, string.rep("x", 57))
  T.checkerr("can never fit", r.put, r, string.rep("x", 1000))
  r:close()
end)

T.test("misuse raises and names the argument", function()
  local seg <close> = segment("misuse", 4096)
  T.checkerr("bad argument #1", shm.ring.create, nil, 0, 64)
  T.checkerr("shmhost.segment expected", shm.ring.create, {}, 0, 64)
  T.checkerr("bad argument #2", shm.ring.create, seg, -8, 64)
  T.checkerr("multiple of 8", shm.ring.create, seg, 4, 64)
  T.checkerr("bad argument #3", shm.ring.create, seg, 0, 0)
  T.checkerr("bad argument #3", shm.ring.create, seg, 0, 12)
  T.checkerr("bad argument #3", shm.ring.create, seg, 0, "lots")
  T.checkerr("outside segment", shm.ring.create, seg, 0, 4096) -- no room for the header
  T.checkerr("outside segment", shm.ring.create, seg, 4096, 8)
  T.checkerr("bad argument #2", shm.ring.attach, seg, 8192)
  local r = shm.ring.create(seg, 0, 256)
  -- Called through pcall, not as methods, so the message counts self as #1.
  T.checkerr("bad argument #2", r.push, r, {})
  T.checkerr("bad argument #2", r.push, r)
  T.checkerr("bad argument #2", r.get, r, -1)
  T.checkerr("bad argument #1", function() r:put({}) end)
  T.checkerr("shmhost.ring expected", r.pop, seg)
  r:close()
  r:close() -- idempotent
  T.checkerr("ring is closed", r.push, r, "x")
  T.checkerr("ring is closed", r.pop, r)
  T.checkerr("ring is closed", r.get, r)
  T.checkerr("ring is closed", r.used, r)
  T.ok(tostring(r):find("closed"))
  do
    local c <close> = shm.ring.create(seg, 0, 256)
    T.ok(c:push("x"))
  end
  -- A closed segment is refused, not read.
  local r2 = shm.ring.create(seg, 0, 256)
  local seg2 = segment("closed", 4096)
  local r3 = shm.ring.create(seg2, 0, 256)
  seg2:close()
  T.checkerr("closed", r3.push, r3, "x")
  T.checkerr("closed", r3.pop, r3)
  r3:close()
  r2:close()
end)

T.test("a region that is not a ring, or a corrupt one, is refused", function()
  local seg <close> = segment("corrupt", 4096)
  T.checkfail("no ring at offset 0", shm.ring.attach, seg, 0)
  T.checkfail("no ring", shm.ring.attach, seg, 4000) -- less than a header left
  local r = shm.ring.create(seg, 0, 512)
  seg:set("u64", 8, 1 << 20) -- a capacity past the segment
  local _, errno = T.checkfail("corrupt ring header", shm.ring.attach, seg, 0)
  T.eq(errno, shm.errno.EBADMSG)
  seg:set("u64", 8, 512)
  seg:set("u32", 4, 9) -- another version
  T.checkfail("unsupported ring version", shm.ring.attach, seg, 0)
  seg:set("u32", 4, 1)
  -- A live handle meets corruption as nil, message, errno, never a crash.
  T.ok(r:push("hello"))
  seg:set("u32", 256, 100000) -- the record's length
  local v, msg, e = r:pop()
  T.eq(v, nil)
  T.ok(msg:find("corrupt"), msg)
  T.eq(e, shm.errno.EBADMSG)
  seg:set("u64", 64, 12345) -- head: misaligned
  v, msg = r:push("x")
  T.eq(v, nil)
  T.ok(msg:find("corrupt"), msg)
  r:close()
end)

T.test("a task waiting in get meets a corrupt record as nil, message, errno", function()
  local seg <close> = segment("corruptwait", 4096)
  local r = shm.ring.create(seg, 0, 512)
  local res
  shm.spawn(function() res = table.pack(r:get(5)) end)
  shm.sleep(0.15) -- past the spin: the wait is in the thread now
  T.eq(res, nil)
  -- A "peer" publishes a record whose length runs past the data area (without a wake: the
  -- sleeping slice ends within 100 ms and the loop looks again).
  seg:set("u32", 256, 100000)
  seg:set("u32", 260, 1)
  seg:store("u64", 64, 16)
  T.ok(T.wait_until(function() return res end, 2))
  T.eq(res[1], nil)
  T.ok(tostring(res[2]):find("corrupt"), tostring(res[2]))
  T.eq(res[3], shm.errno.EBADMSG)
  r:close()
end)

T.test("read-only segment cannot hold a ring", function()
  local seg <close> = segment("ro", 4096)
  shm.ring.create(seg, 0, 256):close()
  local ro <close> = assert(shm.open(T.name("ro"), {readonly = true}))
  T.checkerr("read-only", shm.ring.create, ro, 0, 256)
  T.checkerr("read-only", shm.ring.attach, ro, 0)
end)

T.test("put and get between two tasks, flow control and order", function()
  local seg <close> = segment("tasks")
  local r = shm.ring.create(seg, 0, 256)
  local n, got, sum = 3000, 0, 0
  local done = false
  shm.spawn(function()
    for i = 1, n do
      local s = r:get(5)
      T.eq(s, ("m%d"):format(i) .. string.rep(".", i % 50))
      got = got + 1
      sum = sum + #s
    end
    done = true
  end)
  local want = 0
  for i = 1, n do
    local s = ("m%d"):format(i) .. string.rep(".", i % 50)
    want = want + #s
    T.eq(r:put(s, 5), true)
  end
  T.ok(T.wait_until(function() return done end, 10))
  T.eq(got, n)
  T.eq(sum, want)
  r:close()
end)

T.test("get and put time out", function()
  local seg <close> = segment("timeout", 4096)
  local r = shm.ring.create(seg, 0, 64)
  local t0 = shm.now()
  local v, msg, e = r:get(0.2)
  T.eq(v, nil)
  T.eq(msg, "timeout")
  T.eq(e, shm.errno.ETIMEDOUT)
  T.ok(shm.now() - t0 >= 0.19 and shm.now() - t0 < 1.5, "waited " .. (shm.now() - t0))
  T.eq(r:get(0), nil)
  T.ok(r:push(string.rep("y", 56)))
  v, msg = r:put("z", 0.1)
  T.eq(v, nil)
  T.eq(msg, "timeout")
  r:close()
end)

T.test("waiting outside a task raises, even with a message there; pop does not wait", function()
  local seg <close> = segment("notask", 4096)
  local r = shm.ring.create(seg, 0, 256)
  local err, early
  local timer = uv.new_timer()
  local cb = T.expect(1, function()
    timer:close()
    r:push("ready")
    local ok, e = pcall(r.get, r)
    err = not ok and e
    early = r:pop()
  end)
  timer:start(10, 0, cb)
  T.ok(T.wait_until(function() return err end, 5))
  T.eq(early, "ready")
  T.ok(tostring(err):find("outside a task"), tostring(err))
  r:close()
end)

T.test("closing the ring resumes a waiting task with nil, 'closed'", function()
  local seg <close> = segment("closewait", 4096)
  local r = shm.ring.create(seg, 0, 256)
  local res
  shm.spawn(function() res = table.pack(r:get()) end)
  shm.sleep(0.15)
  T.eq(res, nil)
  local t0 = shm.now()
  r:close()
  T.ok(T.wait_until(function() return res end, 2))
  T.ok(shm.now() - t0 < 0.5)
  T.eq(res[1], nil)
  T.eq(res[2], "closed")
  -- A second waiter on the same side is refused while one waits.
  local r2 = shm.ring.create(seg, 0, 256)
  shm.spawn(function() r2:get(1) end)
  shm.sleep(0.05)
  T.checkerr("already waiting", r2.get, r2, 1)
  r2:close()
end)

-- A child shmhost that attaches to the ring in segment NAME and runs BODY with `r`.
local function child(tag, body, timeout)
  local code = [[
    local shm = require "shmhost"
    local seg = assert(shm.open(arg[1]))
    local r = assert(shm.ring.attach(seg, 0))
  ]] .. body
  return T.start_shmhost{"-e", code, T.name(tag), timeout = timeout or 30}
end

T.test("two processes: a child consumes 200000 messages with a checksum", function()
  local seg <close> = segment("stream", 1 << 20)
  local r = shm.ring.create(seg, 0, 4096)
  local c = child("stream", [[
    local n, sum = 0, 0
    while true do
      local s = assert(r:get(10))
      if s == "end" then break end
      n = n + 1
      for i = 1, #s, 7 do sum = (sum * 31 + s:byte(i)) % 1000000007 end
    end
    print(n, sum)
  ]])
  local n, sum = 200000, 0
  for i = 1, n do
    local s = tostring(i):rep(i % 9)
    for k = 1, #s, 7 do sum = (sum * 31 + s:byte(k)) % 1000000007 end
    assert(r:put(s, 10))
  end
  assert(r:put("end"))
  c:wait()
  T.eq(c.stderr, "")
  T.eq(c.code, 0)
  T.eq(c.stdout, ("%d\t%d\n"):format(n, sum))
  r:close()
end)

T.test("a peer that dies ends the wait within a second", function()
  local seg <close> = segment("death", 65536)
  local r = shm.ring.create(seg, 0, 1024)
  local c = child("death", [[
    r:push("hi")
    print("ready")
    shm.sleep(60)
  ]])
  T.eq(r:get(10), "hi")
  T.ok(T.wait_until(function() return c:output():find("ready") end, 10))
  local res
  shm.spawn(function() res = table.pack(r:get()) end)
  shm.sleep(0.2)
  T.eq(res, nil)
  local t0 = shm.now()
  c:kill("sigkill")
  c:wait()
  T.ok(T.wait_until(function() return res end, 3))
  T.ok(shm.now() - t0 < 1.0, "noticed after " .. (shm.now() - t0))
  T.eq(res[1], nil)
  T.eq(res[2], "peer died")
  T.eq(r:peer("producer"), "dead")
  local st, pid = r:peer("consumer")
  T.eq(st, "alive")
  T.eq(pid, shm.pid())
  r:close()
end)

T.test("a producer that fills the ring and a consumer that dies", function()
  local seg <close> = segment("death2", 65536)
  local r = shm.ring.create(seg, 0, 64)
  local c = child("death2", [[
    assert(r:get(10))
    print("ready")
    shm.sleep(60)
  ]])
  T.ok(r:push("first"))
  T.ok(T.wait_until(function() return c:output():find("ready") end, 10))
  while r:push("12345678") do end -- full now
  local t0 = shm.now()
  c:kill("sigkill")
  local v, msg = r:put("more")
  T.eq(v, nil)
  T.eq(msg, "peer died")
  T.ok(shm.now() - t0 < 1.0)
  c:wait()
  r:close()
end)

T.test("a peer that closes its ring ends the wait with 'peer closed'", function()
  local seg <close> = segment("leave", 65536)
  local r = shm.ring.create(seg, 0, 1024)
  local c = child("leave", [[
    r:push("last")
    shm.sleep(0.3)
    r:close()
    shm.sleep(2)
  ]])
  T.eq(r:get(10), "last")
  local t0 = shm.now()
  local v, msg = r:get(10)
  T.eq(v, nil)
  T.eq(msg, "peer closed")
  T.ok(shm.now() - t0 < 1.5)
  local st, pid = r:peer("producer")
  T.eq(st, "closed")
  T.eq(pid, c.pid)
  c:kill("sigkill")
  c:wait()
  r:close()
end)

T.test("rings dropped while their threads exist are collected cleanly", function()
  local seg <close> = segment("gc", 65536)
  for i = 1, 20 do
    local r = shm.ring.create(seg, 0, 256)
    T.eq(r:get(0.01), nil) -- starts the waiting thread
  end
  collectgarbage()
  collectgarbage()
  local r = shm.ring.create(seg, 0, 256)
  T.ok(r:push("alive"))
  T.eq(r:pop(), "alive")
  r:close()
end)

T.test("exit before the first wait, with a ring and a luv timer open, ends clean", function()
  local c = T.shmhost{"-e", [[
    local shm, uv = require "shmhost", require "luv"
    local seg = assert(shm.memfd("exit", {size = 4096}))
    local r = shm.ring.create(seg, 0, 64)
    assert(r:push("left in the ring"))
    local t = uv.new_timer()
    t:start(1000, 1000, function() end)
    shm.exit(3)
  ]], timeout = 10}
  T.eq(c.signal, 0, "signal")
  T.eq(c.code, 3, "exit status")
  T.eq(c.stderr, "")
end)

T.done()
