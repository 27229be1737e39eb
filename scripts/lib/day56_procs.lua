-- Child processes for the Day56 exercises: start a bundled scenario (or any shmhost script)
-- in a process group of its own with a deadline, feed its stdin, collect its lines, wait for
-- a line or for its end, and kill its whole group. Used from a task (the main chunk is one).
--
--   local P = require "day56_procs"
--   local w = P.start{"writer", "--name", name, stdin = true, timeout = 20}
--   w:send("-w hello")          w:wait_line("^message=hello$", 5) -> true|false
--   w:close_stdin()             w:wait(5) -> code, signal (nil on timeout)
--   w:kill("sigkill")           P.cleanup() kills every child still running
local uv = require "luv"
local procs = require "procs"

local P = {}
-- A Proc holds a procs child (scripts/lib/procs.lua) rather than being one: its `lines` field
-- and `stderr` method name what the child type has as a method and a field.
local Proc = {}
Proc.__index = Proc
-- What P.start started, so P.cleanup kills its own children and no one else's.
local started = setmetatable({}, {__mode = "k"})

-- opts[1..n]: the arguments of shmhost (a script name or -e CODE and its arguments);
-- opts.stdin = true keeps a pipe to its stdin; opts.timeout (seconds, default 30) kills the
-- process group after that long; opts.prog replaces shmhost as the program.
function P.start(opts)
  local o = {opts.prog or uv.exepath()}
  for k, v in pairs(opts) do
    if math.type(k) == "integer" then o[k + 1] = v elseif k ~= "prog" then o[k] = v end
  end
  local c, err = procs.start(o)
  if not c then error(err:gsub("^spawn ", "cannot start "), 2) end
  -- lines: the stdout lines so far, a table that grows as they come.
  local p = setmetatable({child = c, pid = c.pid, lines = c:lines()}, Proc)
  started[p] = true
  return p
end

-- The child's state (exited, code, signal, timed_out) reads through to the procs child.
function Proc:__index(k)
  local m = Proc[k]
  if m ~= nil then return m end
  return rawget(self, "child")[k]
end

function Proc:send(line) self.child:write(line .. "\n") end

function Proc:close_stdin() self.child:close_stdin() end

function Proc:kill(sig) return self.child:kill(sig) end

-- The stdout lines so far matching `pattern` (a Lua pattern).
function Proc:grep(pattern)
  local n = 0
  for _, l in ipairs(self.lines) do if l:find(pattern) then n = n + 1 end end
  return n
end

function Proc:stderr() return select(2, self.child:output()) end

-- Waits until a stdout line matches `pattern`, at most `secs` (default 5); returns whether
-- one did.
function Proc:wait_line(pattern, secs)
  return self.child:wait_line(pattern, secs or 5) ~= nil
end

-- Waits for the process to end and its output to be read, at most `secs` (default 5);
-- returns its exit code and signal, or nil when it still runs.
function Proc:wait(secs) return self.child:wait(secs or 5) end

-- Kills every child still running (their groups), for the end of an exercise.
function P.cleanup()
  for p in pairs(started) do p:kill("sigkill") end
end

-- Prints a child's output with a prefix, the way `make demo` shows it.
function Proc:show(prefix)
  for _, l in ipairs(self.lines) do print(("%-8s| %s"):format(prefix, l)) end
  for l in self:stderr():gmatch("[^\n]+") do print(("%-8s! %s"):format(prefix, l)) end
end

return P
