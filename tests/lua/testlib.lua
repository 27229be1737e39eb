-- The helper every Lua test uses: cases, error checks, callback counters, unique names, child
-- processes with deadlines, and a final check that the test left nothing behind.
--
--   local T = require "testlib"
--   T.test("segment round trip", function() ... T.eq(got, want) end)
--   T.checkerr("bad argument #1", shm.open, 42)
--   local cb = T.expect(1, function(x) ... end)     -- must be called exactly once
--   local r = T.shmhost{"-e", "print(1)", timeout = 5} -- runs a child shmhost
--   T.done()                                         -- prints "N passed, N failed"
local shm = require "shmhost"
local uv = require "luv"

local T = {}
T.tag = "shmht" .. shm.pid()
T.exe = uv.exepath()

local passed, failed = 0, 0
local expectations = {}

local function fmt(v)
  if type(v) == "string" then return string.format("%q", v) end
  return tostring(v)
end

-- ------------------------------------------------------------ assertions

function T.ok(v, msg)
  if not v then error((msg or "check failed") .. " (got " .. fmt(v) .. ")", 2) end
  return v
end

function T.eq(got, want, msg)
  if got ~= want then
    error(string.format("%s: expected %s, got %s", msg or "eq", fmt(want), fmt(got)), 2)
  end
  return got
end

-- Calls f(...) and requires it to raise an error whose message contains `pattern` (plain
-- text first, then as a Lua pattern). Returns the message.
function T.checkerr(pattern, f, ...)
  local ok, err = pcall(f, ...)
  if ok then error("expected an error matching '" .. pattern .. "', but the call succeeded", 2) end
  local msg = tostring(err)
  if not (msg:find(pattern, 1, true) or msg:find(pattern)) then
    error(string.format("error %s does not match '%s'", fmt(msg), pattern), 2)
  end
  return msg
end

-- Requires `nil, message, errno` from f(...), the message matching `pattern` when given.
function T.checkfail(pattern, f, ...)
  local v, msg, errno = f(...)
  if v ~= nil then error("expected nil, message, errno; got " .. fmt(v), 2) end
  if type(msg) ~= "string" or math.type(errno) ~= "integer" then
    error("expected nil, message, errno; got nil, " .. fmt(msg) .. ", " .. fmt(errno), 2)
  end
  if pattern and not (msg:find(pattern, 1, true) or msg:find(pattern)) then
    error(string.format("message %s does not match '%s'", fmt(msg), pattern), 2)
  end
  return msg, errno
end

-- Returns a function that wraps fn and must be called exactly n times before T.done().
function T.expect(n, fn, label)
  local e = {n = n, calls = 0, label = label or debug.traceback("", 2):match("\n%s*([^\n]+)")}
  expectations[#expectations + 1] = e
  return function(...)
    e.calls = e.calls + 1
    if fn then return fn(...) end
  end
end

-- ------------------------------------------------------------ names

-- A POSIX name unique to this test process: "/shmht<pid>_<s>".
function T.name(s) return "/" .. T.tag .. "_" .. (s or "x") end

-- A socket path unique to this test process.
function T.path(s) return "/tmp/" .. T.tag .. "_" .. (s or "x") .. ".sock" end

-- ------------------------------------------------------------ cases

function T.test(name, fn)
  local t0 = shm.now()
  local ok, err = xpcall(fn, debug.traceback)
  if ok then
    passed = passed + 1
    io.stdout:write(string.format("ok   %s (%.3f s)\n", name, shm.now() - t0))
  else
    failed = failed + 1
    io.stdout:write(string.format("FAIL %s\n  %s\n", name, tostring(err):gsub("\n", "\n  ")))
  end
end

-- Waits in the current task until cond() is true or `timeout` seconds pass; returns cond()'s
-- last value.
function T.wait_until(cond, timeout, step)
  local deadline = shm.now() + (timeout or 5)
  local v = cond()
  while not v and shm.now() < deadline do
    shm.sleep(step or 0.01)
    v = cond()
  end
  return v
end

-- ------------------------------------------------------------ child processes

local Child = {}
Child.__index = Child

-- Starts a process: opts[1] is the program, opts[2..] its arguments; opts.stdin (a string
-- written then closed, or true to keep stdin open for :write), opts.env (extra "K=V"
-- strings), opts.timeout (seconds, default 30) after which the process group is killed.
function T.start(opts)
  local stdout, stderr = uv.new_pipe(false), uv.new_pipe(false)
  local stdin = opts.stdin and uv.new_pipe(false) or nil
  local args = {}
  for i = 2, #opts do args[#args + 1] = opts[i] end
  local env
  if opts.env then
    env = {}
    for k, v in pairs(uv.os_environ()) do env[#env + 1] = k .. "=" .. v end
    for _, kv in ipairs(opts.env) do env[#env + 1] = kv end
  end
  local c = setmetatable({out = {}, err = {}, stdin = stdin, open = 2}, Child)
  local handle, pid = uv.spawn(opts[1], {
    args = args, env = env, stdio = {stdin or nil, stdout, stderr}, detached = true, cwd = opts.cwd,
  }, function(code, signal)
    c.code, c.signal = code, signal
    c.exited = true
    c:_maybe_done()
  end)
  if not handle then
    stdout:close(); stderr:close(); if stdin then stdin:close() end
    error("spawn " .. tostring(opts[1]) .. ": " .. tostring(pid), 2)
  end
  c.handle, c.pid = handle, pid
  local function reader(buf)
    return function(err, data)
      if data then buf[#buf + 1] = data
      else c.open = c.open - 1; c:_maybe_done() end
    end
  end
  stdout:read_start(reader(c.out))
  stderr:read_start(reader(c.err))
  c.pipes = {stdout, stderr}
  if type(opts.stdin) == "string" then
    stdin:write(opts.stdin)
    stdin:shutdown(function() stdin:close() end)
    c.stdin = nil
  end
  c.timer = uv.new_timer()
  c.timer:start(math.floor((opts.timeout or 30) * 1000), 0, function()
    c.timed_out = true
    c:kill("sigkill")
  end)
  return c
end

function Child:_maybe_done()
  if self.exited and self.open <= 0 and not self.done then
    self.done = true
    self.stdout, self.stderr = table.concat(self.out), table.concat(self.err)
    if not self.timer:is_closing() then self.timer:close() end
    for _, p in ipairs(self.pipes) do if not p:is_closing() then p:close() end end
    if self.stdin and not self.stdin:is_closing() then self.stdin:close() end
    if not self.handle:is_closing() then self.handle:close() end
    if self.waiter then
      local w = self.waiter
      self.waiter = nil
      shm.resume(w)
    end
  end
end

function Child:write(s)
  assert(self.stdin, "stdin of this child is not open")
  self.stdin:write(s)
end

function Child:close_stdin()
  if self.stdin and not self.stdin:is_closing() then
    local p = self.stdin
    p:shutdown(function() p:close() end)
  end
  self.stdin = nil
end

-- Signals the child's whole process group (it runs detached, in a group of its own).
function Child:kill(sig)
  if not self.exited then uv.kill(-self.pid, sig or "sigterm") end
end

-- Waits until the child has exited and its output is read; returns self (fields code,
-- signal, stdout, stderr, timed_out).
function Child:wait()
  if not self.done then
    self.waiter = coroutine.running()
    shm.suspend()
  end
  return self
end

-- The output read so far (stdout and stderr), without waiting.
function Child:output() return table.concat(self.out), table.concat(self.err) end

function T.run(opts) return T.start(opts):wait() end

-- Runs the shmhost binary under test: T.shmhost{"-e", code, ...} or T.shmhost{"script", ...}.
function T.shmhost(opts)
  local o = {T.exe}
  for k, v in pairs(opts) do
    if type(k) == "number" then o[k + 1] = v else o[k] = v end
  end
  return T.run(o)
end

function T.start_shmhost(opts)
  local o = {T.exe}
  for k, v in pairs(opts) do
    if type(k) == "number" then o[k + 1] = v else o[k] = v end
  end
  return T.start(o)
end

-- ------------------------------------------------------------ the end

-- Objects whose names carry this test's tag and still exist.
local function leftovers()
  local left = {}
  for _, dir in ipairs({"/dev/shm", "/tmp"}) do
    local h = uv.fs_scandir(dir)
    while h do
      local name = uv.fs_scandir_next(h)
      if not name then break end
      if name:find(T.tag, 1, true) then left[#left + 1] = dir .. "/" .. name end
    end
  end
  return left
end

-- Checks the expected-callback counts and that nothing with this test's tag is left, prints
-- the closing line and exits non-zero on any failure.
function T.done()
  for _, e in ipairs(expectations) do
    if e.calls ~= e.n then
      failed = failed + 1
      io.stdout:write(string.format("FAIL callback at %s: expected %d calls, got %d\n",
                                    e.label, e.n, e.calls))
    end
  end
  -- Objects closed just now may need the loop to finish removing them.
  local left = leftovers()
  if #left > 0 then
    collectgarbage()
    shm.sleep(0.05)
    left = leftovers()
  end
  if #left > 0 then
    failed = failed + 1
    io.stdout:write("FAIL left behind: " .. table.concat(left, " ") .. "\n")
  end
  io.stdout:write(string.format("%d passed, %d failed\n", passed, failed))
  shm.exit(failed == 0 and 0 or 1)
end

return T
