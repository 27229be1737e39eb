-- scripts/lib/procs.lua: real child processes started, fed, read line by line, waited for
-- with and without a limit, killed at their deadline with their whole group, and misuse.
local T = require "testlib"
local procs = require "procs"
local shm = require "shmhost"
local uv = require "luv"

local SH = "/bin/sh"

-- True while a process with this pid runs: a zombie waiting for its (new) parent to reap it
-- has ended already, though kill(pid, 0) still finds it.
local function alive(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return false end
  local stat = f:read("a")
  f:close()
  return stat:match("^%d+ %b() (%a)") ~= "Z"
end

T.test("output, exit code and lines of a finished child", function()
  local c = assert(procs.start{SH, "-c", "printf 'one\\ntwo\\nlast'; echo oops >&2; exit 3"})
  T.eq(c:wait_line("^two$", 5), "two")
  local code, signal = c:wait(5)
  T.eq(code, 3)
  T.eq(signal, 0)
  T.ok(c.exited and c.finished, "ended and read")
  local out, err = c:output()
  T.eq(out, "one\ntwo\nlast")
  T.eq(err, "oops\n")
  local lines = c:lines()
  T.eq(#lines, 3, "the unterminated last line counts once stdout ended")
  T.eq(lines[3], "last")
  T.eq(c:wait_line("^nothing$", 1), nil, "no such line and the child ended")
  T.eq(c:wait(0), 3, "a finished child answers a wait of 0")
end)

T.test("stdin as a string, and as a pipe written then closed", function()
  local c = assert(procs.start{SH, "-c", "tr a-z A-Z", stdin = "hello\n"})
  c:wait(5)
  T.eq((c:output()), "HELLO\n")
  local cat = assert(procs.start{"/bin/cat", stdin = true})
  cat:write("first\n")
  T.eq(cat:wait_line("^first$", 5), "first", "the line came back before stdin closed")
  cat:write(42)
  cat:close_stdin()
  cat:close_stdin()
  T.eq(cat:wait(5), 0)
  T.eq((cat:output()), "first\n42")
  T.checkerr("stdin of /bin/cat is not open", cat.write, cat, "late")
end)

T.test("env adds to the environment, cwd sets the directory", function()
  local c = assert(procs.start{SH, "-c", 'echo "$PROCS_A $PROCS_B $HOME"; pwd',
                               env = {"PROCS_A=1", PROCS_B = "two"}, cwd = "/tmp"})
  c:wait(5)
  T.eq((c:output()), "1 two " .. tostring(os.getenv("HOME")) .. "\n/tmp\n")
end)

T.test("stdout to a descriptor is not collected", function()
  local path = T.path("out")
  local fd = assert(uv.fs_open(path, "w", tonumber("600", 8)))
  local c = assert(procs.start{SH, "-c", "echo to-file; echo to-pipe >&2", stdout = fd})
  uv.fs_close(fd)
  T.eq(c:wait(5), 0)
  local out, err = c:output()
  T.eq(out, "")
  T.eq(err, "to-pipe\n")
  local f = assert(io.open(path))
  T.eq(f:read("a"), "to-file\n")
  f:close()
  os.remove(path)
end)

T.test("a wait with a limit returns nil while the child runs; kill ends it", function()
  local c = assert(procs.start{SH, "-c", "echo up; exec sleep 30"})
  T.ok(c:wait_line("up", 5), "started")
  local t0 = shm.now()
  T.eq(c:wait(0.2), nil, "still running")
  T.ok(shm.now() - t0 >= 0.15, "waited about the limit")
  T.eq(c:wait_line("never", 0.1), nil)
  T.ok(c:kill("sigterm"), "signalled")
  local code, signal = c:wait(5)
  T.eq(signal, 15, "ended by SIGTERM (code " .. tostring(code) .. ")")
  local ok, msg = c:kill()
  T.eq(ok, nil)
  T.ok(msg:find("has ended", 1, true), msg)
end)

T.test("the deadline kills the whole group, grandchildren too", function()
  local c = assert(procs.start{SH, "-c", "sleep 30 & echo $!; wait", timeout = 0.5})
  local line = c:wait_line("^%d+$", 5)
  T.ok(line, "the grandchild's pid")
  local grandchild = tonumber(line)
  local _, signal = c:wait(10)
  T.eq(signal, 9)
  T.ok(c.timed_out, "timed_out set")
  T.ok(T.wait_until(function() return not alive(grandchild) end, 5), "grandchild killed")
end)

-- The process group of a process, from /proc/PID/stat (the fifth field, after the name).
local function pgrp(pid)
  local f = assert(io.open("/proc/" .. pid .. "/stat"))
  local stat = f:read("a")
  f:close()
  return tonumber(stat:match("^%d+ %b() %a %d+ (%d+)"))
end

T.test("group = false: the child stays in our group and kill reaches it alone", function()
  local c = assert(procs.start{"/bin/sleep", "30", group = false})
  local g = assert(procs.start{"/bin/sleep", "30"})
  T.eq(pgrp(c.pid), pgrp("self"), "the same group as this process")
  T.eq(pgrp(g.pid), g.pid, "group = true: the leader of a group of its own")
  c:kill("sigkill")
  T.eq(select(2, c:wait(5)), 9)
  g:kill("sigkill")
  T.eq(select(2, g:wait(5)), 9)
end)

T.test("several tasks wait on one child; cleanup kills what still runs", function()
  local c = assert(procs.start{SH, "-c", "sleep 0.2; echo done"})
  local results = {}
  local finished = T.expect(2)
  for i = 1, 2 do
    shm.spawn(function()
      results[i] = c:wait(5)
      finished()
    end)
  end
  T.eq(c:wait_line("^done$", 5), "done")
  T.eq(c:wait(5), 0)
  shm.sleep(0.05)
  T.eq(results[1], 0)
  T.eq(results[2], 0)
  local a = assert(procs.start{"/bin/sleep", "30"})
  local b = assert(procs.start{"/bin/sleep", "30"})
  T.eq(procs.cleanup(5), 2, "two were still running")
  T.eq(select(2, a:wait(0)), 9)
  T.eq(select(2, b:wait(0)), 9)
  T.eq(procs.cleanup(), 0, "nothing left")
end)

T.test("the deadline timer does not keep a finished script alive", function()
  local t0 = shm.now()
  local r = T.shmhost{"-e", [[
    local procs = require "procs"
    local c = assert(procs.start{"/bin/true", timeout = 60})
    c:wait()
    local bg = assert(procs.start{"/bin/true", timeout = 60})
    print(c.code)]], timeout = 20}
  T.eq(r.code, 0, r.stderr)
  T.eq(r.stdout, "0\n")
  T.ok(shm.now() - t0 < 10, "ended at once, not at a deadline")
end)

T.test("children still running are killed when the script ends by an error, exit or a signal", function()
  for _, ending in ipairs{"error('stop here')", "shmhost.exit(3)"} do
    local r = T.shmhost{"-e", [[
      local procs = require "procs"
      local c = assert(procs.start{"/bin/sleep", "30", timeout = 60})
      local d = assert(procs.start{"/bin/sleep", "30", timeout = 60, group = false})
      print(c.pid, d.pid)
      ]] .. ending, timeout = 20}
    T.ok(r.code == 1 or r.code == 3, r.stderr)
    local a, b = r.stdout:match("^(%d+)\t(%d+)\n$")
    T.ok(a, r.stdout)
    T.ok(T.wait_until(function() return not alive(a) and not alive(b) end, 5),
         "both sleeps killed after " .. ending)
  end
  -- SIGTERM to that shmhost alone: it ends with 128 + 15 after cleanup.
  local c = T.start_shmhost{"-e", [[
    local procs = require "procs"
    local a = assert(procs.start{"/bin/sleep", "30", timeout = 60})
    local b = assert(procs.start{"/bin/sleep", "30", timeout = 60, group = false})
    print(a.pid, b.pid)
    shmhost.sleep(30)]], timeout = 20}
  local line = c:wait_line("^%d+\t%d+$", 10)
  T.ok(line, "the pids")
  local a, b = line:match("(%d+)\t(%d+)")
  T.ok(uv.kill(c.pid, "sigterm"))
  c:wait()
  T.eq(c.code, 128 + 15, c.stderr)
  T.ok(T.wait_until(function() return not alive(a) and not alive(b) end, 5),
       "both sleeps killed after SIGTERM")
end)

T.test("a program that cannot start is nil, message, errno name", function()
  local c, msg, name = procs.start{"/nonexistent/procs_prog"}
  T.eq(c, nil)
  T.ok(msg:find("spawn /nonexistent/procs_prog: ENOENT", 1, true), msg)
  T.eq(name, "ENOENT")
  T.checkerr("spawn /nonexistent", T.start, {"/nonexistent/procs_prog"})
end)

T.test("misuse raises and names the argument", function()
  T.checkerr("table expected", procs.start, "ls")
  T.checkerr("opts[1] must be the program", procs.start, {})
  T.checkerr("unknown option 'stdni'", procs.start, {"/bin/true", stdni = true})
  T.checkerr("argument #2 must be a string", procs.start, {"/bin/echo", "a", {}})
  T.checkerr("option 'stdin'", procs.start, {"/bin/true", stdin = {}})
  T.checkerr("option 'stdout'", procs.start, {"/bin/true", stdout = "x"})
  T.checkerr("option 'timeout'", procs.start, {"/bin/true", timeout = -1})
  T.checkerr("option 'timeout'", procs.start, {"/bin/true", timeout = 0 / 0})
  T.checkerr("option 'env'", procs.start, {"/bin/true", env = {"NOEQUALS"}})
  T.checkerr("option 'group'", procs.start, {"/bin/true", group = 1})
  local c = assert(procs.start{"/bin/cat", stdin = true})
  T.checkerr("bad argument #1 to 'write'", c.write, c, {})
  T.checkerr("bad argument #1 to 'kill'", c.kill, c, {})
  T.checkerr("bad argument #1 to 'kill'", c.kill, c, "sigbogus")
  T.checkerr("bad argument #1 to 'kill'", c.kill, c, -1)
  T.checkerr("bad argument #1 to 'wait_line'", c.wait_line, c, nil)
  T.checkerr("bad argument #2 to 'await'", c.wait, c, -1)
  -- A wait outside a task raises and leaves no waiter behind.
  local co = coroutine.wrap(function() return pcall(c.wait, c, 5) end)
  local ok, err = co()
  T.eq(ok, false)
  T.ok(tostring(err):find("cannot wait outside a task", 1, true), err)
  T.eq(#c._waiters, 0, "no waiter left")
  -- Nor from a luv callback, even when there would be nothing to wait for.
  local done = assert(procs.start{"/bin/true"})
  T.eq(done:wait(5), 0)
  local from_cb
  local timer = uv.new_timer()
  timer:start(0, 0, T.expect(1, function()
    from_cb = {pcall(done.wait, done, 5)}
    timer:close()
  end))
  T.wait_until(function() return from_cb end, 5)
  T.eq(from_cb[1], false)
  T.ok(tostring(from_cb[2]):find("cannot wait outside a task", 1, true), from_cb[2])
  T.eq(done:wait(0), 0, "a wait of 0 works anywhere")
  -- An error in an await condition is raised in the waiting task.
  local slow = assert(procs.start{SH, "-c", "sleep 0.1; echo x"})
  T.checkerr("condition broke", slow.await, slow, function(ch)
    if #ch:lines() > 0 then error("condition broke", 0) end
  end, 5)
  T.eq(slow:wait(5), 0)
  c:close_stdin()
  T.eq(c:wait(5), 0)
end)

T.test("wait_until polls a condition from a task, with a deadline", function()
  local n = 0
  T.eq(procs.wait_until(function() n = n + 1; return n >= 3 and n end, 5, 0.001), 3)
  local t0 = shm.now()
  T.eq(procs.wait_until(function() return false end, 0.05, 0.01), false)
  T.ok(shm.now() - t0 >= 0.05, "waited for the deadline")
end)

T.done()
