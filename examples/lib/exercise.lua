-- What the scripted exercises share: unique names, child processes with deadlines, checks,
-- and the ending every exercise has (a few readable lines, then PASS or FAIL as the last line,
-- exit status 0 or 1, and nothing left behind even when something failed).
--
--   local E = require "exercise"
--   E.run(function()
--     local c = E.start{E.exe, "-e", code, timeout = 10}   -- another shmhost
--     c:wait_for("ready")                                  -- a line on its stdout
--     E.check(c:wait().code == 0, "the child succeeded")
--     return "what the exercise showed"                   -- printed after PASS:
--   end)
--
-- Objects created with `create = true` are removed by shmhost itself when the exercise ends;
-- E.on_exit registers the removal of anything else (key files, segments left by a killed
-- child). Children are killed when the exercise ends before them.
local shm = require "shmhost"
local uv = require "luv"
local procs = require "procs"

local E = {}

-- The shmhost binary running this script; children run the same one.
E.exe = uv.exepath()
-- A tag with this process's pid, so exercises running side by side never share a name.
E.tag = "shmhost_ex" .. shm.pid()

local cleanups = {}
local failures = 0

-- A POSIX object name unique to this run: "/shmhost_ex<pid>_<s>".
function E.name(s) return "/" .. E.tag .. "_" .. s end

-- A path under /tmp unique to this run.
function E.path(s) return "/tmp/" .. E.tag .. "_" .. s end

-- Runs fn at the end of the exercise, whatever happened (last registered, first run).
function E.on_exit(fn) cleanups[#cleanups + 1] = fn end

-- Records a check: prints what failed, and the exercise ends with FAIL. Returns `ok`.
function E.check(ok, what)
  if not ok then
    failures = failures + 1
    print("check failed: " .. what)
  end
  return ok
end

-- Polls cond() until it is true or `timeout` seconds pass (procs.wait_until).
function E.wait_until(cond, timeout, step)
  return procs.wait_until(cond, timeout or 10, step or 0.005)
end

-- ------------------------------------------------------------ child processes

-- Children are procs children (scripts/lib/procs.lua) that stay in this process's group; the
-- exercise's view adds text access, wait_for and status, and the fields stdout and stderr once
-- :wait() returns.
local Child = setmetatable({}, {__index = procs.Child})
Child.__index = Child

-- Starts a process: opts[1] the program, opts[2..] its arguments. Its stdout and stderr are
-- collected unless opts.stdout / opts.stderr give a descriptor to use instead; opts.stdin is a
-- string (written, then closed), a descriptor, or true (a pipe for c:write); opts.env adds
-- "K=V" strings to the environment. After opts.timeout seconds (default 30) it is killed with
-- SIGKILL. It stays in this process's group, so whoever kills the exercise's group kills it
-- too.
function E.start(opts)
  local o = {group = false}
  for k, v in pairs(opts) do o[k] = v end
  local c, err = procs.start(o)
  if not c then error(err:gsub("^spawn ", "cannot start "), 2) end
  return setmetatable(c, Child)
end

-- Starts another shmhost: E.shmhost{"-e", code, ...} or E.shmhost{"scenario", ...}.
function E.shmhost(opts)
  local o = {E.exe}
  for k, v in pairs(opts) do
    if math.type(k) == "integer" then o[k + 1] = v else o[k] = v end
  end
  return E.start(o)
end

function Child:stdout_text() return (self:output()) end
function Child:stderr_text() return select(2, self:output()) end

-- Waits until the child's stdout contains `text` (plain) or `timeout` seconds (default 10)
-- pass or it exits; returns true when the text came.
function Child:wait_for(text, timeout)
  return self:await(function(c)
    if c:stdout_text():find(text, 1, true) then return true end
    if c.finished then return false end
  end, timeout or 10) == true
end

-- Waits until the child has exited and its output is read; returns self, with code, signal,
-- stdout, stderr and timed_out set.
function Child:wait()
  procs.Child.wait(self)
  self.stdout, self.stderr = self:output()
  return self
end

-- How the child ended, for a person: "exit 0", "signal 9 (killed at its deadline)".
function Child:status()
  if self.signal and self.signal ~= 0 then
    return ("signal %d%s"):format(self.signal, self.timed_out and " (killed at its deadline)" or "")
  end
  return "exit " .. tostring(self.code)
end

-- Runs a shmhost child to its end and returns it (E.shmhost{...}:wait()).
function E.run_shmhost(opts) return E.shmhost(opts):wait() end

-- Shows a child's stderr, indented, when a check about it failed.
function E.show(c)
  local err = c.stderr or c:stderr_text()
  if err ~= "" then print("  its stderr: " .. err:gsub("\n$", ""):gsub("\n", "\n  ")) end
end

-- ------------------------------------------------------------ files

function E.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

function E.write_file(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

-- `n` pseudo-random bytes from `seed` (xorshift), 8 at a time, so both sides of a transfer can
-- make the same data without sending it twice.
function E.random_bytes(n, seed)
  local x = seed | 1
  local parts = {}
  for i = 1, (n + 7) // 8 do
    x = x ~ (x << 13); x = x ~ (x >> 7); x = x ~ (x << 17)
    parts[i] = string.pack("<i8", x)
  end
  return table.concat(parts):sub(1, n)
end

-- ------------------------------------------------------------ the ending

local function finish(ok, summary)
  procs.cleanup(5)
  for i = #cleanups, 1, -1 do
    local fine, err = pcall(cleanups[i])
    if not fine then print("cleanup failed: " .. tostring(err)) end
  end
  if ok and failures == 0 then
    print("PASS" .. (summary and (": " .. summary) or ""))
    shm.exit(0)
  end
  local why = {}
  if not ok then why[#why + 1] = "stopped by the error above" end
  if failures > 0 then why[#why + 1] = failures .. " check(s) failed" end
  print("FAIL: " .. table.concat(why, "; "))
  shm.exit(1)
end

-- Runs the exercise fn; an error in it, or a failed check, ends with FAIL and status 1. fn
-- returns a one-line summary printed after PASS.
function E.run(fn)
  local ok, res = xpcall(fn, debug.traceback)
  if not ok then
    print("error: " .. tostring(res))
    finish(false)
  end
  finish(true, res)
end

return E
