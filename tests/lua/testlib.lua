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
local procs = require "procs"

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

-- Polls cond() until it is true or `timeout` seconds pass (procs.wait_until).
function T.wait_until(cond, timeout, step)
  return procs.wait_until(cond, timeout or 5, step or 0.01)
end

-- ------------------------------------------------------------ child processes

-- Children are procs children (scripts/lib/procs.lua) in a process group of their own; the
-- test's view adds, once :wait() returns, the fields stdout and stderr.
local Child = setmetatable({}, {__index = procs.Child})
Child.__index = Child

-- Starts a process: opts[1] is the program, opts[2..] its arguments; opts.stdin (a string
-- written then closed, or true to keep stdin open for :write), opts.env (extra "K=V"
-- strings), opts.cwd, opts.timeout (seconds, default 30) after which the process group is
-- killed.
function T.start(opts)
  local c, err = procs.start(opts)
  if not c then error(err, 2) end
  return setmetatable(c, Child)
end

-- Waits until the child has exited and its output is read; returns self (fields code,
-- signal, stdout, stderr, timed_out).
function Child:wait()
  procs.Child.wait(self)
  self.stdout, self.stderr = self:output()
  return self
end

function T.run(opts) return T.start(opts):wait() end

-- The options for the shmhost binary under test: its arguments after it, the options kept.
local function shmhost_opts(opts)
  local o = {T.exe}
  for k, v in pairs(opts) do
    if math.type(k) == "integer" then o[k + 1] = v else o[k] = v end
  end
  return o
end

-- Runs the shmhost binary under test: T.shmhost{"-e", code, ...} or T.shmhost{"script", ...}.
function T.shmhost(opts) return T.run(shmhost_opts(opts)) end

function T.start_shmhost(opts) return T.start(shmhost_opts(opts)) end

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
