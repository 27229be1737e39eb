-- The runtime as a script sees it: tasks, sleep, luv on the same loop, errors, exit, signals.
local T = require "testlib"
local shm = require "shmhost"
local uv = require "luv"

T.test("require and the global are the same table", function()
  T.eq(require "shmhost", shmhost)
  T.eq(package.loaded.luv, uv)
  T.ok(type(shm.version) == "string")
end)

T.test("spawned tasks interleave in sleep order", function()
  local order = {}
  local done = 0
  for _, d in ipairs({0.06, 0.02, 0.04}) do
    shm.spawn(function()
      shm.sleep(d)
      order[#order + 1] = d
      done = done + 1
    end)
  end
  T.eq(#order, 0, "spawn does not run the task before the spawner yields")
  T.ok(T.wait_until(function() return done == 3 end, 2))
  T.eq(table.concat(order, ","), "0.02,0.04,0.06")
end)

T.test("spawn passes arguments and returns the task's thread", function()
  local got
  local co = shm.spawn(function(a, b) got = a + b end, 2, 3)
  T.eq(type(co), "thread")
  shm.sleep(0)
  T.eq(got, 5)
  T.eq(coroutine.status(co), "dead")
end)

T.test("sleep measures time on the monotonic clock", function()
  local t0 = shm.now()
  T.eq(shm.sleep(0.05), true)
  local dt = shm.now() - t0
  T.ok(dt >= 0.049, "slept at least 50 ms")
  T.ok(math.type(shm.now()) == "float")
end)

T.test("a luv timer fires on the same loop while a task sleeps", function()
  local fired = T.expect(1)
  local t = uv.new_timer()
  t:start(10, 0, function() fired() t:close() end)
  shm.sleep(0.05)
end)

T.test("a plain coroutine.yield in a task gives other tasks a turn", function()
  local seen = false
  shm.spawn(function() seen = true end)
  coroutine.yield()
  T.eq(seen, true)
end)

T.test("suspend and resume bridge a luv callback to a task", function()
  local me = coroutine.running()
  uv.fs_stat("/", function(err, st) shm.resume(me, err, st and st.type) end)
  local err, kind = shm.suspend()
  T.eq(err, nil)
  T.eq(kind, "directory")
  T.checkerr("not a task suspended by shmhost.suspend", shm.resume, me)
  T.checkerr("thread expected", shm.resume, 42)
end)

T.test("waiting outside a task is an error that says so", function()
  local co = coroutine.create(function() shm.sleep(0.01) end)
  local ok, err = coroutine.resume(co)
  T.eq(ok, false)
  T.ok(err:find("cannot wait outside a task", 1, true), err)
  T.checkerr("time in seconds", shm.sleep, -1)
  T.checkerr("number expected", shm.sleep, "x")
  T.checkerr("function expected", shm.spawn, 42)
  T.checkerr("exit status", shm.exit, 300)
end)

T.test("pid is this process", function()
  T.eq(shm.pid(), uv.os_getpid())
end)

T.test("errno names", function()
  T.eq(shm.errno.ENOENT, 2)
  T.eq(shm.errno.EEXIST, 17)
  T.ok(shm.errno.ETIMEDOUT > 0)
end)

T.test("an error in a task ends the program with 1 and a traceback", function()
  local r = T.shmhost{"-e", [[
    shmhost.spawn(function() shmhost.sleep(0.01) error("task failed here") end)
    shmhost.sleep(5) print("not reached")]], timeout = 10}
  T.eq(r.code, 1)
  T.ok(r.stderr:find("shmhost: %(command line%):1: task failed here"), r.stderr)
  T.ok(r.stderr:find("stack traceback:", 1, true))
  T.eq(r.stdout, "")
end)

T.test("an error in a luv callback ends the program with 1, not a crash", function()
  local r = T.shmhost{"-e", [[
    local uv = require "luv"
    local t = uv.new_timer()
    t:start(5, 0, function() local x = nil; return x.field end)
    shmhost.sleep(5)]], timeout = 10}
  T.eq(r.code, 1)
  T.eq(r.signal, 0)
  T.ok(r.stderr:find("attempt to index", 1, true), r.stderr)
  T.ok(r.stderr:find("stack traceback:", 1, true))
end)

T.test("shmhost.exit ends at once with its status, from a task or a callback", function()
  T.eq(T.shmhost{"-e", "shmhost.exit(7) print('no')"}.code, 7)
  local r = T.shmhost{"-e", [[
    local uv = require "luv"
    local t = uv.new_timer()
    t:start(5, 0, function() shmhost.exit(5) end)
    shmhost.sleep(5) print("no")]]}
  T.eq(r.code, 5)
  T.eq(r.stdout, "")
  T.eq(T.shmhost{"-e", "pcall(shmhost.exit, 3) print('no')"}.code, 3)
end)

T.test("the loop runs until the last handle closes", function()
  local r = T.shmhost{"-e", [[
    local uv = require "luv"
    local n = 0
    local t = uv.new_timer()
    t:start(5, 5, function() n = n + 1 if n == 3 then t:close() print("closed") end end)
    print("main done")]]}
  T.eq(r.code, 0)
  T.eq(r.stdout, "main done\nclosed\n")
end)

T.test("SIGTERM during a sleeping task: cleanup runs, status 143", function()
  local c = T.start_shmhost{"-e", [[
    local uv = require "luv"
    io.stdout:write("ready\n")
    shmhost.sleep(30)]], timeout = 10}
  T.ok(T.wait_until(function() return c:output():find("ready") end, 5))
  c:kill("sigterm")
  c:wait()
  T.eq(c.code, 143)
end)

T.test("SIGINT and SIGHUP give 130 and 129", function()
  for sig, code in pairs({sigint = 130, sighup = 129}) do
    local c = T.start_shmhost{"-e", "io.stdout:write('ready\\n') shmhost.sleep(30)", timeout = 10}
    T.ok(T.wait_until(function() return c:output():find("ready") end, 5))
    c:kill(sig)
    c:wait()
    T.eq(c.code, code, sig)
  end
end)

T.test("a script that watches SIGTERM with luv decides itself", function()
  local c = T.start_shmhost{"-e", [[
    local uv = require "luv"
    local s = uv.new_signal()
    s:start("sigterm", function()
      print("graceful")
      s:close()
      shmhost.spawn(function() shmhost.sleep(0.05) print("still running") shmhost.exit(42) end)
    end)
    print("ready")
    shmhost.sleep(30)]], timeout = 10}
  T.ok(T.wait_until(function() return c:output():find("ready") end, 5))
  c:kill("sigterm")
  c:wait()
  T.eq(c.code, 42)
  T.eq(c.stdout, "ready\ngraceful\nstill running\n")
end)

T.test("arg and ... as lua gives them", function()
  local r = T.shmhost{"-e", "print(arg[0], arg[1], arg[2], #arg, select('#', ...), ...)", "a", "b c"}
  T.eq(r.stdout, "-e\ta\tb c\t2\t2\ta\tb c\n")
end)

T.done()
