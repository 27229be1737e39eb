-- shm.unix in one process: listen, connect, accept, send and recv with descriptors, callbacks,
-- the path rules (stale, live, not a socket), abstract names, seqpacket, misuse, lifetime.
local T = require "testlib"
local shm = require "shmhost"
local uv = require "luv"

local function exists(path) return uv.fs_lstat(path) ~= nil end

local function open_fds()
  collectgarbage() collectgarbage()
  local n, h = 0, uv.fs_scandir("/proc/self/fd")
  while h and uv.fs_scandir_next(h) do n = n + 1 end
  return n
end

-- A listener and a connected pair on it.
local function pair(opts)
  local srv = assert(shm.unix.listen(opts))
  local copts = {type = opts.type, path = opts.path, abstract = opts.abstract}
  local c = assert(shm.unix.connect(copts))
  local s = assert(srv:accept())
  return srv, c, s
end

T.test("listen, connect, accept, send and recv bytes both ways", function()
  local path = T.path("basic")
  local srv, c, s = pair{path = path}
  T.ok(exists(path), "the socket path exists")
  T.eq(uv.fs_lstat(path).type, "socket")
  T.eq(uv.fs_lstat(path).mode & 511, 384, "mode 0600 by default")
  T.eq(c:send("ping"), 4)
  local b, objs = s:recv()
  T.eq(b, "ping")
  T.eq(type(objs), "table")
  T.eq(#objs, 0, "no objects: an empty table")
  T.eq(s:send("pong!"), 5)
  T.eq(c:recv(), "pong!")
  T.eq(c:send(string.rep("x", 100)), 100)
  T.eq(s:recv(10), string.rep("x", 10), "recv(max) takes at most max bytes")
  T.eq(s:recv(), string.rep("x", 90))
  c:send("small")
  T.eq(s:recv(1 << 30), "small", "a huge max returns what is there")
  T.ok(tostring(srv):find("listening on " .. path, 1, true), tostring(srv))
  c:close() s:close()
  T.eq(srv:close(), true)
  T.ok(not exists(path), "close removes the path it made")
  T.eq(srv:close(), true, "close is idempotent")
end)

T.test("peer gives pid, uid, gid of the other end", function()
  local srv, c, s = pair{path = T.path("peer")}
  local p = s:peer()
  T.eq(p.pid, shm.pid())
  T.eq(p.uid, uv.getuid())
  T.eq(p.gid, uv.getgid())
  T.eq(c:peer().pid, shm.pid())
  c:close() s:close() srv:close()
end)

T.test("recv yields until data comes; accept yields until a peer connects", function()
  local path = T.path("yield")
  local srv = assert(shm.unix.listen{path = path})
  shm.spawn(function()
    shm.sleep(0.03)
    local c = assert(shm.unix.connect{path = path})
    shm.sleep(0.03)
    c:send("late")
    c:close()
  end)
  local t0 = shm.now()
  local s = assert(srv:accept())
  T.ok(shm.now() - t0 >= 0.025, "accept waited")
  T.eq(s:recv(), "late")
  T.eq(select(2, s:recv()), "closed", "then the end of the stream")
  local v, msg = s:recv()
  T.eq(v, nil)
  T.eq(msg, "closed", "and again")
  s:close() srv:close()
end)

T.test("descriptors travel typed: eventfd, memfd segment, POSIX segment, socket, raw fd", function()
  local srv, c, s = pair{path = T.path("objs")}
  local ev <close> = assert(shm.eventfd())
  local seg <close> = assert(shm.memfd("objs", {size = 4096}))
  local pseg <close> = assert(shm.open(T.name("objs"), {create = true, size = 8192}))
  local pfds = assert(uv.pipe({nonblock = true}, {nonblock = true}))
  local pipe_r, pipe_w = pfds.read, pfds.write
  T.eq(c:send("five", {ev, seg, pseg, c, pipe_r}), 4)
  local b, objs = s:recv()
  T.eq(b, "five")
  T.eq(#objs, 5)
  T.eq(getmetatable(objs[1]).__name, "shmhost.eventfd")
  T.eq(getmetatable(objs[2]).__name, "shmhost.segment")
  T.eq(objs[2].kind, "memfd")
  T.eq(objs[2]:size(), 4096)
  T.eq(getmetatable(objs[3]).__name, "shmhost.segment")
  T.eq(objs[3]:size(), 8192)
  T.eq(getmetatable(objs[4]).__name, "shmhost.socket")
  T.eq(getmetatable(objs[5]).__name, "shmhost.fd")
  -- They are the same kernel objects as ours.
  seg:write(0, "shared bytes")
  T.eq(objs[2]:read(0, 12), "shared bytes")
  objs[3]:write(100, "posix too")
  T.eq(pseg:read(100, 9), "posix too")
  objs[1]:notify(3)
  T.eq(ev:wait(), 3)
  T.eq(objs[5]:stat().type, "fifo")
  uv.fs_write(pipe_w, "through the pipe")
  T.eq(uv.fs_read(objs[5]:fd(), 100), "through the pipe")
  -- The received socket is our own connection's other end: a live socket object.
  T.eq(objs[4]:send("via copy"), 8)
  T.eq(s:recv(), "via copy")
  for _, o in ipairs(objs) do o:close() end
  uv.fs_close(pipe_r) uv.fs_close(pipe_w)
  pseg:unlink()
  c:close() s:close() srv:close()
end)

T.test("an empty message with objects sends one NUL byte", function()
  local srv, c, s = pair{path = T.path("nul")}
  local ev <close> = assert(shm.eventfd())
  T.eq(c:send("", {ev}), 1)
  local b, objs = s:recv()
  T.eq(b, "\0")
  T.eq(#objs, 1)
  objs[1]:close()
  T.eq(c:send(""), 0, "without objects an empty send sends nothing")
  c:close() s:close() srv:close()
end)

T.test("raw descriptor objects: fd, stat, take, close, send on", function()
  local srv, c, s = pair{path = T.path("raw")}
  local f = assert(io.open("/proc/self/stat"))
  local path = "/tmp/" .. T.tag .. "_raw.txt"
  local fd = assert(uv.fs_open(path, "w+", 420))
  uv.fs_write(fd, "file contents")
  T.eq(c:send("f", {fd}), 1, "a plain descriptor number is accepted")
  local _, objs = s:recv()
  local raw = objs[1]
  T.eq(getmetatable(raw).__name, "shmhost.fd")
  local st = raw:stat()
  T.eq(st.type, "file")
  T.eq(st.size, 13)
  T.eq(st.mode, 420)
  T.ok(tostring(raw):find("shmhost.fd (fd", 1, true))
  -- Sent on again, it arrives again.
  T.eq(s:send("again", {raw}), 5)
  local _, objs2 = c:recv()
  T.eq(objs2[1]:stat().ino, st.ino)
  objs2[1]:close()
  local n = raw:take()
  T.ok(math.type(n) == "integer")
  T.checkerr("descriptor is closed", raw.fd, raw)
  T.eq(uv.fs_read(n, 100, 0), "file contents", "the taken number is ours to use")
  uv.fs_close(n)
  T.eq(raw:close(), true)
  uv.fs_close(fd)
  os.remove(path)
  f:close()
  c:close() s:close() srv:close()
end)

T.test("many descriptors in one message, and none leak", function()
  local srv, c, s = pair{path = T.path("many"), type = "seqpacket"}
  local base = open_fds()
  local evs = {}
  for i = 1, 20 do evs[i] = assert(shm.eventfd{init = i}) end
  T.eq(c:send("twenty", evs), 6)
  local b, objs = s:recv()
  T.eq(b, "twenty")
  T.eq(#objs, 20)
  for i = 1, 20 do T.eq(objs[i]:try(), i) end
  for i = 1, 20 do objs[i]:close() evs[i]:close() end
  T.eq(open_fds(), base, "every descriptor closed")
  local many = {}
  for i = 1, 254 do many[i] = 0 end
  T.checkerr("at most 253 objects", c.send, c, "x", many)
  c:close() s:close() srv:close()
end)

T.test("seqpacket keeps message boundaries; stream may join them", function()
  local srv, c, s = pair{path = T.path("seq"), type = "seqpacket"}
  c:send("one") c:send("two") c:send("three")
  T.eq(s:recv(), "one")
  T.eq(s:recv(), "two")
  T.eq(s:recv(), "three")
  -- A seqpacket message longer than max is cut to max, as recv(2) does.
  c:send("0123456789")
  T.eq(s:recv(4), "0123")
  c:send("next")
  T.eq(s:recv(), "next")
  c:close()
  T.eq(select(2, s:recv()), "closed")
  s:close() srv:close()
  local srv2, c2, s2 = pair{path = T.path("str")}
  c2:send("one") c2:send("two")
  shm.sleep(0.01)
  T.eq(s2:recv(), "onetwo")
  c2:close() s2:close() srv2:close()
end)

T.test("a large stream send with descriptors completes in a task", function()
  local srv, c, s = pair{path = T.path("big")}
  local ev <close> = assert(shm.eventfd())
  local big = {}
  for i = 1, 4096 do big[i] = string.format("%07d\n", i) end
  big = table.concat(big):rep(64) -- 2 MiB: far more than the socket buffer
  local got, gotobjs = {}, 0
  local reader = shm.spawn(function()
    local n = 0
    while n < #big do
      local b, objs = s:recv()
      got[#got + 1] = b
      n = n + #b
      gotobjs = gotobjs + #objs
      for _, o in ipairs(objs) do o:close() end
    end
  end)
  T.eq(c:send(big, {ev}), #big, "send returns the whole count")
  T.ok(T.wait_until(function() return coroutine.status(reader) == "dead" end, 10))
  T.eq(table.concat(got) == big, true, "byte-exact")
  T.eq(gotobjs, 1, "the descriptor arrived once, with the first part")
  c:close() s:close() srv:close()
end)

T.test("outside a task a send that cannot finish returns the bytes that went", function()
  local srv, c, s = pair{path = T.path("part")}
  local big = string.rep("z", 4 << 20)
  local co = coroutine.create(function() return c:send(big) end)
  local ok, n = coroutine.resume(co)
  T.eq(ok, true)
  T.ok(math.type(n) == "integer" and n > 0 and n < #big, "a partial count: " .. tostring(n))
  c:close() s:close() srv:close()
end)

T.test("on_accept and on_recv run callbacks as tasks", function()
  local path = T.path("cb")
  local srv = assert(shm.unix.listen{path = path})
  local msgs, conns, ended = {}, {}, 0
  local on_conn = T.expect(2, function(conn)
    conns[#conns + 1] = conn
    conn:on_recv(function(b, objs)
      if b == nil then
        T.eq(objs, "closed")
        ended = ended + 1
        conn:close()
        return
      end
      shm.sleep(0.001) -- callbacks are tasks: they may wait
      msgs[#msgs + 1] = b
      conn:send("ack:" .. b)
    end)
  end)
  srv:on_accept(on_conn)
  local clients = {}
  for i = 1, 2 do
    clients[i] = assert(shm.unix.connect{path = path})
    clients[i]:send("hello " .. i)
    T.eq(clients[i]:recv(), "ack:hello " .. i)
  end
  T.eq(#msgs, 2)
  for i = 1, 2 do clients[i]:close() end
  T.ok(T.wait_until(function() return ended == 2 end, 2), "on_recv hears the end once per connection")
  T.eq(srv:on_accept(nil), true)
  srv:close()
end)

T.test("connect to nothing, and connect{wait} until the listener appears", function()
  local path = T.path("later")
  local msg, errno = T.checkfail("connect " .. path, shm.unix.connect, {path = path})
  T.eq(errno, shm.errno.ENOENT)
  T.ok(msg:find("No such file", 1, true), msg)
  T.checkfail("connect @" .. T.tag, shm.unix.connect, {abstract = T.tag .. "_none"})
  local t0 = shm.now()
  local _, e2 = T.checkfail("connect", shm.unix.connect, {path = path, wait = 0.1})
  T.eq(e2, shm.errno.ENOENT)
  T.ok(shm.now() - t0 >= 0.09, "waited for the whole wait")
  local srv
  shm.spawn(function() shm.sleep(0.08) srv = assert(shm.unix.listen{path = path}) end)
  local c = assert(shm.unix.connect{path = path, wait = 5})
  T.ok(srv ~= nil)
  local s = assert(srv:accept())
  c:send("made it")
  T.eq(s:recv(), "made it")
  c:close() s:close() srv:close()
end)

T.test("listen over a stale socket replaces it with a warning", function()
  local path = T.path("stale")
  -- A listener that dies without removing its path leaves a stale socket behind.
  local r = T.shmhost{"-e", string.format([[
    local srv = shmhost.unix.listen{path = %q}
    srv:keep()
    io.stdout:write("listening\n")
    shmhost.exit(0)]], path), timeout = 10}
  T.eq(r.code, 0, r.stderr)
  T.eq(uv.fs_lstat(path).type, "socket")
  T.checkfail("connect", shm.unix.connect, {path = path})
  local r2 = T.shmhost{"-e", string.format([[
    local srv = assert(shmhost.unix.listen{path = %q})
    print("replaced")
    srv:close()]], path), timeout = 10}
  T.eq(r2.code, 0, r2.stderr)
  T.eq(r2.stdout, "replaced\n")
  T.ok(r2.stderr:find("warning: listen " .. path .. ": replaced a stale socket", 1, true), r2.stderr)
  T.ok(not exists(path), "and removed it on close")
end)

T.test("listen over a live listener is Address already in use", function()
  local path = T.path("live")
  local srv = assert(shm.unix.listen{path = path})
  local msg, errno = T.checkfail("listen " .. path .. ": Address already in use",
                                 shm.unix.listen, {path = path})
  T.eq(errno, shm.errno.EADDRINUSE)
  T.checkfail("Address already in use", shm.unix.listen, {path = path, type = "seqpacket"})
  T.ok(exists(path), "the live listener's path is left alone")
  local c = assert(shm.unix.connect{path = path})
  c:close()
  srv:close()
  T.ok(msg)
end)

T.test("listen over a file that is not a socket fails and never deletes it", function()
  local path = "/tmp/" .. T.tag .. "_precious.txt"
  local f = assert(io.open(path, "w"))
  f:write("keep me")
  f:close()
  local msg, errno = T.checkfail("listen " .. path, shm.unix.listen, {path = path})
  T.eq(errno, shm.errno.EEXIST)
  T.ok(msg:find("not a socket", 1, true), msg)
  T.eq(io.open(path):read("a"), "keep me")
  os.remove(path)
end)

T.test("abstract names: exact bytes, no file, any NULs", function()
  local name = T.tag .. "\0abs"
  local srv, c, s = pair{abstract = name, type = "seqpacket"}
  T.ok(tostring(srv):find("@" .. T.tag .. "?abs", 1, true), tostring(srv))
  c:send("abstract")
  T.eq(s:recv(), "abstract")
  -- The prefix before the NUL is another name.
  T.checkfail("Connection refused", shm.unix.connect, {abstract = T.tag, type = "seqpacket"})
  T.checkfail("Address already in use", shm.unix.listen, {abstract = name, type = "seqpacket"})
  c:close() s:close() srv:close()
  local srv2 = assert(shm.unix.listen{abstract = name}, "the name is free once closed")
  srv2:close()
end)

T.test("close wakes a task waiting in recv or accept with nil, 'closed'", function()
  local srv, c, s = pair{path = T.path("wake")}
  local results = {}
  shm.spawn(function() results.recv = {s:recv()} end)
  shm.spawn(function() results.accept = {srv:accept()} end)
  shm.sleep(0.01)
  s:close()
  srv:close()
  shm.sleep(0)
  T.eq(results.recv[1], nil)
  T.eq(results.recv[2], "closed")
  T.eq(results.accept[1], nil)
  T.eq(results.accept[2], "closed")
  c:close()
end)

T.test("a closed peer: recv is nil, 'closed'; send is nil, 'closed', EPIPE", function()
  local srv, c, s = pair{path = T.path("gone")}
  shm.spawn(function() shm.sleep(0.02) s:close() end)
  local v, msg = c:recv()
  T.eq(v, nil)
  T.eq(msg, "closed")
  local v2, msg2, errno = c:send("anyone?")
  T.eq(v2, nil)
  T.eq(msg2, "closed")
  T.eq(errno, shm.errno.EPIPE)
  c:close() srv:close()
end)

T.test("misuse raises and names the argument", function()
  local path = T.path("misuse")
  local L = shm.unix.listen
  T.checkerr("table expected", L, nil)
  T.checkerr("exactly one of 'path' and 'abstract'", L, {})
  T.checkerr("exactly one of 'path' and 'abstract'", L, {path = path, abstract = "x"})
  T.checkerr("unknown option 'pth'", L, {pth = path})
  T.checkerr("option 'type' must be", L, {path = path, type = "dgram"})
  T.checkerr("option 'path' is too long", L, {path = "/tmp/" .. string.rep("p", 200)})
  T.checkerr("option 'path' must not be empty", L, {path = ""})
  T.checkerr("option 'abstract' must not be empty", L, {abstract = ""})
  T.checkerr("option 'abstract' must be a string", L, {abstract = 5})
  T.checkerr("octal mode", L, {path = path, mode = "rw"})
  T.checkerr("allow_uids[2] must be a uid", L, {path = path, allow_uids = {1, "x"}})
  T.checkerr("option 'allow_uids' must be a table", L, {path = path, allow_uids = 3})
  T.checkerr("option 'backlog'", L, {path = path, backlog = 0})
  T.checkerr("unknown option 'mode'", shm.unix.connect, {path = path, mode = "0600"})
  T.checkerr("option 'wait' must be a non-negative", shm.unix.connect, {path = path, wait = -1})
  T.ok(not exists(path), "nothing made by a refused call")

  local srv, c, s = pair{path = path}
  T.checkerr("string expected", c.send, c, nil)
  T.checkerr("table expected", c.send, c, "x", 5)
  T.checkerr("objs[1] has no descriptor to send (string)", c.send, c, "x", {"nope"})
  T.checkerr("objs[2] is not an open descriptor", c.send, c, "x", {0, 99999})
  T.checkerr("objs[1] has no descriptor to send (shmhost.layout)", c.send, c, "x",
             {shm.layout{{"a", "int"}}})
  local ev = assert(shm.eventfd())
  ev:close()
  T.checkerr("eventfd is closed", c.send, c, "x", {ev})
  T.checkerr("max must be", s.recv, s, 0)
  T.checkerr("socket is listening", srv.recv, srv)
  T.checkerr("socket is listening", srv.send, srv, "x")
  T.checkerr("socket is not listening", c.accept, c)
  T.checkerr("socket is not listening", c.on_accept, c, function() end)
  T.checkerr("socket is listening (use on_accept)", srv.on_recv, srv, function() end)
  T.checkerr("function expected", s.on_recv, s, 1)
  shm.spawn(function() s:recv() end)
  shm.sleep(0)
  T.checkerr("another task is already receiving", s.recv, s)
  T.checkerr("a task is waiting", s.on_recv, s, function() end)
  c:send("x")
  shm.sleep(0.01)
  s:on_recv(function() end)
  T.checkerr("has a callback (on_recv)", s.recv, s)
  s:on_recv(nil)
  local co = coroutine.create(function() return s:recv() end)
  local ok, err = coroutine.resume(co)
  T.eq(ok, false)
  T.ok(err:find("sock:recv: cannot wait outside a task", 1, true), err)
  co = coroutine.create(function() return shm.unix.connect{path = path, wait = 1} end)
  ok, err = coroutine.resume(co)
  T.ok(not ok and err:find("cannot wait outside a task", 1, true), err)
  c:close() s:close() srv:close()
  for _, m in ipairs({"send", "recv", "accept", "peer", "fd", "on_recv", "on_accept", "keep"}) do
    T.checkerr("socket is closed", s[m], s, "x")
  end
  T.checkerr("shmhost.socket expected", s.send, ev, "x")
end)

T.test("keep leaves the path; the default removes it at exit even without close", function()
  local kept, dropped = T.path("kept"), T.path("dropped")
  local r = T.shmhost{"-e", string.format([[
    local a = shmhost.unix.listen{path = %q, keep = true}
    local b = shmhost.unix.listen{path = %q}
    print("made")]], kept, dropped), timeout = 10}
  T.eq(r.code, 0, r.stderr)
  T.ok(exists(kept), "kept")
  T.ok(not exists(dropped), "removed at exit")
  -- The kept one is stale now: a new listener replaces it and removes it on close.
  local srv = assert(shm.unix.listen{path = kept, mode = "0640"})
  T.eq(uv.fs_lstat(kept).mode & 511, 416, "mode 0640")
  srv:close()
  T.ok(not exists(kept))
end)

T.test("to-be-closed and collected sockets close; an idle socket keeps nothing alive", function()
  local path = T.path("tbc")
  do
    local srv <close> = assert(shm.unix.listen{path = path})
  end
  T.ok(not exists(path), "__close removes the path")
  local r = T.shmhost{"-e", string.format([[
    local srv = shmhost.unix.listen{path = %q}
    local c = shmhost.unix.connect{path = %q}
    local s = srv:accept()
    print("idle")]], path, path), timeout = 10}
  T.eq(r.code, 0, r.stderr)
  T.eq(r.stdout, "idle\n")
  T.ok(not exists(path))
  -- Collection closes but leaves a path to the cleanup at exit: an abstract name here.
  local base = open_fds()
  local srv, c, s = pair{abstract = T.tag .. "_gc"}
  srv, c, s = nil, nil, nil
  collectgarbage() collectgarbage()
  T.eq(open_fds(), base, "__gc closed all three")
  shm.sleep(0)
end)

T.test("a connection whose only reference is its on_recv goes on receiving", function()
  local srv = assert(shm.unix.listen{abstract = T.tag .. "_anchor"})
  local c = assert(shm.unix.connect{abstract = T.tag .. "_anchor"})
  local got, ended = {}, false
  do
    local s = assert(srv:accept())
    s:on_recv(function(b) if b then got[#got + 1] = b else ended = true end end)
  end
  collectgarbage() collectgarbage()
  c:send("still there?")
  T.ok(T.wait_until(function() return #got == 1 end, 2), "received after a full collection")
  T.eq(got[1], "still there?")
  local base = open_fds()
  c:close()
  T.ok(T.wait_until(function() return ended end, 2), "the end reaches the callback")
  T.eq(open_fds(), base - 2, "then the connection is collectable (and ours is closed)")
  srv:close()
end)

T.done()
