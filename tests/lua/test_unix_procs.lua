-- shm.unix and shm.eventfd between real processes: a child shmhost that receives a segment
-- and an eventfd and uses them, a peer of another uid refused, peers that die mid-wait.
local T = require "testlib"
local shm = require "shmhost"
local uv = require "luv"

local NOBODY = 65534
local is_root = uv.getuid() == 0
local setpriv = uv.fs_access("/usr/bin/setpriv", "X") and "/usr/bin/setpriv"
  or (uv.fs_access("/bin/setpriv", "X") and "/bin/setpriv")

-- Runs `code` as a child shmhost with a deadline; returns the child (started, not waited).
local function child(code, opts)
  opts = opts or {}
  return T.start_shmhost{"-e", code, timeout = opts.timeout or 20, stdin = opts.stdin}
end

-- Waits until the child has printed `line` on stdout (or exited).
local function wait_line(c, line, timeout)
  return T.wait_until(function()
    return c:output():find(line, 1, true) or c.exited
  end, timeout or 10) and c:output():find(line, 1, true)
end

T.test("a child receives a memfd segment and an eventfd, writes and notifies", function()
  local path = T.path("xfer")
  local srv = assert(shm.unix.listen{path = path})
  local seg <close> = assert(shm.memfd("xfer", {size = 4096}))
  local ev <close> = assert(shm.eventfd())
  local c = child(string.format([[
    local shm = require "shmhost"
    local conn = assert(shm.unix.connect{path = %q, wait = 10})
    local hello, objs = assert(conn:recv())
    assert(hello == "take these", hello)
    local seg, ev = objs[1], objs[2]
    assert(seg.kind == "memfd" and seg:size() == 4096, tostring(seg))
    assert(getmetatable(ev).__name == "shmhost.eventfd")
    seg:write(0, "written by " .. shm.pid())
    seg:set("u32", 64, 4242)
    ev:notify(5)
    conn:send("done")
    assert(select(2, conn:recv()) == "closed")
    print("child ok")]], path))
  local conn = assert(srv:accept())
  T.eq(conn:peer().pid, c.pid, "the peer is the child")
  T.eq(conn:send("take these", {seg, ev}), 10)
  T.eq(ev:wait(), 5, "the child's notify wakes us")
  T.eq(seg:read(0, 11 + #tostring(c.pid)), "written by " .. c.pid)
  T.eq(seg:get("u32", 64), 4242)
  T.eq(conn:recv(), "done")
  conn:close()
  c:wait()
  T.eq(c.code, 0, c.stderr)
  T.eq(c.stdout, "child ok\n")
  srv:close()
end)

T.test("a child that starts first waits for the listener (connect wait)", function()
  local name = T.tag .. "_first"
  local c = child(string.format([[
    local shm = require "shmhost"
    io.stdout:write("connecting\n")
    local conn = assert(shm.unix.connect{abstract = %q, type = "seqpacket", wait = 10})
    conn:send("hello from " .. shm.pid())
    print((conn:recv()))]], name))
  T.ok(wait_line(c, "connecting"), "child started")
  shm.sleep(0.1)
  local srv = assert(shm.unix.listen{abstract = name, type = "seqpacket"})
  local conn = assert(srv:accept())
  T.eq(conn:recv(), "hello from " .. c.pid)
  conn:send("welcome")
  c:wait()
  T.eq(c.code, 0, c.stderr)
  T.eq(c.stdout, "connecting\nwelcome\n")
  conn:close()
  srv:close()
end)

T.test("a peer of another uid is refused unless allow_uids lists it", function()
  if not (is_root and setpriv) then
    io.stdout:write("  (skipped: needs root and setpriv to run a peer as another uid)\n")
    return
  end
  local name = T.tag .. "_uid"
  -- The listener is a child too, so its warning on stderr can be read.
  local listener = child(string.format([[
    local shm = require "shmhost"
    local srv = assert(shm.unix.listen{abstract = %q})
    print("ready")
    local c = assert(srv:accept())
    print("accepted uid " .. c:peer().uid)
    c:send("welcome")
    c:close()
    local srv2 = assert(shm.unix.listen{abstract = %q .. "_ok", allow_uids = {%d}})
    print("ready2")
    local c2 = assert(srv2:accept())
    print("accepted uid " .. c2:peer().uid)
    c2:send("welcome")
    c2:close()]], name, name, NOBODY))
  T.ok(wait_line(listener, "ready\n"), "listener ready")
  local intruder = T.run{setpriv, "--reuid=" .. NOBODY, "--regid=" .. NOBODY, "--clear-groups",
    T.exe, "-e", string.format([[
    local shm = require "shmhost"
    local c = assert(shm.unix.connect{abstract = %q})
    print(c:peer().uid, select(2, c:recv()))]], name), timeout = 10}
  T.eq(intruder.code, 0, intruder.stderr)
  T.eq(intruder.stdout, "0\tclosed\n", "connected, then closed by the listener")
  -- Our own uid is accepted.
  local me = assert(shm.unix.connect{abstract = name})
  T.eq(me:recv(), "welcome")
  me:close()
  T.ok(wait_line(listener, "ready2"), "second listener ready")
  local friend = T.run{setpriv, "--reuid=" .. NOBODY, "--regid=" .. NOBODY, "--clear-groups",
    T.exe, "-e", string.format([[
    local c = assert(shmhost.unix.connect{abstract = %q})
    print((c:recv()))]], name .. "_ok"), timeout = 10}
  T.eq(friend.code, 0, friend.stderr)
  T.eq(friend.stdout, "welcome\n")
  listener:wait()
  T.eq(listener.code, 0, listener.stderr)
  T.eq(listener.stdout, "ready\naccepted uid 0\nready2\naccepted uid " .. NOBODY .. "\n")
  T.ok(listener.stderr:find("warning: @" .. name .. ": refused a connection from uid " .. NOBODY,
                            1, true), listener.stderr)
end)

T.test("a path listener in a mode-0777 directory refuses another uid too", function()
  if not (is_root and setpriv) then
    io.stdout:write("  (skipped: needs root and setpriv to run a peer as another uid)\n")
    return
  end
  local dir = "/tmp/" .. T.tag .. "_dir"
  assert(uv.fs_mkdir(dir, tonumber("777", 8)))
  uv.fs_chmod(dir, tonumber("777", 8))
  local path = dir .. "/s.sock"
  local srv = assert(shm.unix.listen{path = path, mode = "0666"})
  local got = {}
  srv:on_accept(function(c) got[#got + 1] = c:peer().uid c:close() end)
  local intruder = T.run{setpriv, "--reuid=" .. NOBODY, "--regid=" .. NOBODY, "--clear-groups",
    T.exe, "-e", string.format([[
    local c = assert(shmhost.unix.connect{path = %q})
    print(select(2, c:recv()))]], path), timeout = 10}
  T.eq(intruder.code, 0, intruder.stderr)
  T.eq(intruder.stdout, "closed\n")
  shm.sleep(0.02)
  T.eq(#got, 0, "on_accept never saw it")
  srv:close()
  uv.fs_rmdir(dir)
end)

T.test("a peer killed while we wait in recv wakes us with nil, 'closed'", function()
  local path = T.path("kill")
  local srv = assert(shm.unix.listen{path = path})
  local c = child(string.format([[
    local conn = assert(shmhost.unix.connect{path = %q})
    conn:send("hi")
    print("connected")
    shmhost.sleep(30)]], path))
  local conn = assert(srv:accept())
  T.eq(conn:recv(), "hi")
  T.ok(wait_line(c, "connected"))
  shm.spawn(function() shm.sleep(0.05) c:kill("sigkill") end)
  local t0 = shm.now()
  local v, msg = conn:recv()
  T.eq(v, nil)
  T.eq(msg, "closed")
  T.ok(shm.now() - t0 < 5, "woken promptly")
  c:wait()
  T.eq(c.signal, 9)
  conn:close()
  srv:close()
end)

T.test("a peer killed while we wait in send (its buffer full) wakes us with nil, 'closed'", function()
  local path = T.path("killsend")
  local srv = assert(shm.unix.listen{path = path})
  local c = child(string.format([[
    local conn = assert(shmhost.unix.connect{path = %q})
    print("connected")
    shmhost.sleep(30)]], path))
  local conn = assert(srv:accept())
  T.ok(wait_line(c, "connected"))
  local big = string.rep("b", 16 << 20) -- the child never reads: the send must wait
  shm.spawn(function() shm.sleep(0.1) c:kill("sigkill") end)
  local v, msg, errno = conn:send(big)
  T.eq(v, nil)
  T.eq(msg, "closed")
  T.ok(errno == shm.errno.EPIPE or errno == shm.errno.ECONNRESET, tostring(errno))
  c:wait()
  conn:close()
  srv:close()
end)

T.test("an eventfd waiter in a child wakes from the parent's notify", function()
  local name = T.tag .. "_evchild"
  local srv = assert(shm.unix.listen{abstract = name})
  local ev <close> = assert(shm.eventfd())
  local c = child(string.format([[
    local conn = assert(shmhost.unix.connect{abstract = %q, wait = 10})
    local _, objs = assert(conn:recv())
    local ev = objs[1]
    local total = 0
    ev:on(function(n)
      total = total + n
      if total >= 6 then print("total " .. total) ev:on(nil) conn:send("bye") end
    end)]], name))
  local conn = assert(srv:accept())
  conn:send("ev", {ev})
  for i = 1, 3 do shm.sleep(0.01) ev:notify(i) end
  T.eq(conn:recv(), "bye")
  c:wait()
  T.eq(c.code, 0, c.stderr)
  T.eq(c.stdout, "total 6\n")
  conn:close()
  srv:close()
end)

T.test("descriptors cut by the fd limit (MSG_CTRUNC) are an error and none leak", function()
  local name = T.tag .. "_trunc"
  local srv = assert(shm.unix.listen{abstract = name, type = "seqpacket"})
  -- The child may hold 64 descriptors; 100 arrive, so the kernel installs what fits and sets
  -- MSG_CTRUNC.
  local code = string.format([[
    local uv = require "luv"
    local function nfds()
      collectgarbage()
      local n, h = 0, uv.fs_scandir("/proc/self/fd")
      while h and uv.fs_scandir_next(h) do n = n + 1 end
      return n
    end
    local c = assert(shmhost.unix.connect{abstract = %q, type = "seqpacket", wait = 10})
    c:send("ready")
    local before = nfds()
    local v, msg, errno = c:recv()
    print(v, errno == shmhost.errno.EMSGSIZE, msg:find("MSG_CTRUNC", 1, true) ~= nil)
    print("leaked", nfds() - before)
    print((c:recv()))]], name)
  local child = T.start{"/bin/bash", "-c", 'ulimit -n 64 && exec "$0" -e "$1"', T.exe, code,
                        timeout = 20}
  local conn = assert(srv:accept())
  T.eq(conn:recv(), "ready")
  local evs = {}
  for i = 1, 100 do evs[i] = assert(shm.eventfd()) end
  T.eq(conn:send("many", evs), 4)
  T.eq(conn:send("after"), 5)
  child:wait()
  for i = 1, 100 do evs[i]:close() end
  T.eq(child.code, 0, child.stderr)
  T.eq(child.stdout, "nil\ttrue\ttrue\nleaked\t0\nafter\n")
  conn:close()
  srv:close()
end)

T.test("on_accept hears of a failing accept (EMFILE) once, and can be set again", function()
  local name = T.tag .. "_emfile"
  local code = string.format([[
    local shm = require "shmhost"
    local srv = assert(shm.unix.listen{abstract = %q})
    local hog = {}
    for _ = 1, 200 do
      local ev = shm.eventfd()
      if not ev then break end
      hog[#hog + 1] = ev
    end
    local calls = {}
    srv:on_accept(function(c, msg, errno)
      calls[#calls + 1] = c and "conn" or (errno == shm.errno.EMFILE and "EMFILE" or tostring(msg))
    end)
    print("full")
    for _ = 1, 500 do if #calls > 0 then break end shm.sleep(0.01) end
    shm.sleep(0.05)
    print(table.concat(calls, ","))
    for i = 1, 4 do hog[i]:close() end
    srv:on_accept(function(c) c:send("finally") c:close() srv:close() end)]], name)
  local child = T.start{"/bin/bash", "-c", 'ulimit -n 48 && exec "$0" -e "$1"', T.exe, code,
                        timeout = 20}
  T.ok(wait_line(child, "full"), "the child filled its descriptor table")
  local c = assert(shm.unix.connect{abstract = name})
  T.eq(c:recv(), "finally")
  child:wait()
  T.eq(child.code, 0, child.stderr)
  T.eq(child.stdout, "full\nEMFILE\n", "one call with the error, no spinning")
  c:close()
end)

T.test("two processes wait on one eventfd: one notify wakes one, the other waits on", function()
  local name = T.tag .. "_shared"
  local srv = assert(shm.unix.listen{abstract = name})
  local ev <close> = assert(shm.eventfd())
  local code = string.format([[
    local c = assert(shmhost.unix.connect{abstract = %q, wait = 10})
    local _, objs = assert(c:recv())
    c:send("waiting")
    -- Both children are woken by each notify; the one whose read finds the count gone
    -- (EAGAIN) must go on waiting rather than fail.
    local n, err = objs[1]:wait()
    print("woken " .. tostring(n) .. " " .. tostring(err))]], name)
  local kids = {child(code), child(code)}
  local conns = {}
  for i = 1, 2 do
    conns[i] = assert(srv:accept())
    conns[i]:send("ev", {ev})
  end
  for i = 1, 2 do T.eq(conns[i]:recv(), "waiting") end
  shm.sleep(0.05)
  ev:notify(1)
  local function woken()
    local n = 0
    for _, k in ipairs(kids) do if k:output():find("woken", 1, true) then n = n + 1 end end
    return n
  end
  T.ok(T.wait_until(function() return woken() >= 1 end, 5), "one child woke")
  shm.sleep(0.1)
  T.eq(woken(), 1, "only one child woke")
  ev:notify(1)
  for _, k in ipairs(kids) do
    k:wait()
    T.eq(k.code, 0, k.stderr)
    T.eq(k.stdout, "woken 1 nil\n")
  end
  for i = 1, 2 do conns[i]:close() end
  srv:close()
end)

T.done()
