-- Child processes for the Day56 exercises: start a bundled scenario (or any shmhost script)
-- in a process group of its own with a deadline, feed its stdin, collect its lines, wait for
-- a line or for its end, and kill its whole group. Used from a task (the main chunk is one).
--
--   local P = require "day56_procs"
--   local w = P.start{"writer", "--name", name, stdin = true, timeout = 20}
--   w:send("-w hello")          w:wait_line("^message=hello$", 5) -> true|false
--   w:close_stdin()             w:wait(5) -> code, signal (nil on timeout)
--   w:kill("sigkill")           P.cleanup() kills every child still running
local shm = require "shmhost"
local uv = require "luv"

local P = {}
local Proc = {}
Proc.__index = Proc
local running = {}

-- opts[1..n]: the arguments of shmhost (a script name or -e CODE and its arguments);
-- opts.stdin = true keeps a pipe to its stdin; opts.timeout (seconds, default 30) kills the
-- process group after that long; opts.prog replaces shmhost as the program.
function P.start(opts)
  local out, err = uv.new_pipe(false), uv.new_pipe(false)
  local stdin = opts.stdin and uv.new_pipe(false) or nil
  local args = {}
  for i = 1, #opts do args[i] = opts[i] end
  local p = setmetatable({lines = {}, err = {}, partial = "", stdin = stdin, open = 2}, Proc)
  local handle, pid = uv.spawn(opts.prog or uv.exepath(), {
    args = args, stdio = {stdin, out, err},
    detached = true, -- setsid: a group of its own, so kill() reaches its children too
  }, function(code, signal)
    p.code, p.signal, p.exited = code, signal, true
    running[p] = nil
    p.handle:close()
    if p.timer and not p.timer:is_closing() then p.timer:close() end
  end)
  if not handle then
    out:close(); err:close(); if stdin then stdin:close() end
    error("cannot start " .. tostring(opts[1]) .. ": " .. tostring(pid), 2)
  end
  p.handle, p.pid = handle, pid
  running[p] = true
  out:read_start(function(_, data)
    if not data then out:close() return end
    p.partial = p.partial .. data
    for line in p.partial:gmatch("([^\n]*)\n") do p.lines[#p.lines + 1] = line end
    p.partial = p.partial:match("[^\n]*$")
  end)
  err:read_start(function(_, data)
    if data then p.err[#p.err + 1] = data else err:close() end
  end)
  p.timer = uv.new_timer()
  p.timer:start(math.floor((opts.timeout or 30) * 1000), 0, function()
    p.timed_out = true
    p:kill("sigkill")
  end)
  return p
end

function Proc:send(line)
  assert(self.stdin, "this process has no stdin pipe")
  self.stdin:write(line .. "\n")
end

function Proc:close_stdin()
  local s = self.stdin
  self.stdin = nil
  if s and not s:is_closing() then s:shutdown(function() s:close() end) end
end

function Proc:kill(sig)
  if not self.exited then uv.kill(-self.pid, sig or "sigterm") end
end

-- The stdout lines so far matching `pattern` (a Lua pattern).
function Proc:grep(pattern)
  local n = 0
  for _, l in ipairs(self.lines) do if l:find(pattern) then n = n + 1 end end
  return n
end

function Proc:stderr() return table.concat(self.err) end

-- Waits until a stdout line matches `pattern`, at most `secs`; returns whether one did.
function Proc:wait_line(pattern, secs)
  local deadline = shm.now() + (secs or 5)
  while self:grep(pattern) == 0 do
    if shm.now() > deadline or self.exited then return self:grep(pattern) > 0 end
    shm.sleep(0.01)
  end
  return true
end

-- Waits for the process to end, at most `secs`; returns its exit code and signal, or nil
-- when it still runs.
function Proc:wait(secs)
  local deadline = shm.now() + (secs or 5)
  while not self.exited do
    if shm.now() > deadline then return nil end
    shm.sleep(0.01)
  end
  shm.sleep(0.02) -- let the last output arrive
  return self.code, self.signal
end

-- Kills every child still running (their groups), for the end of an exercise.
function P.cleanup()
  for p in pairs(running) do p:kill("sigkill") end
end

-- Prints a child's output with a prefix, the way `make demo` shows it.
function Proc:show(prefix)
  for _, l in ipairs(self.lines) do print(("%-8s| %s"):format(prefix, l)) end
  for l in self:stderr():gmatch("[^\n]+") do print(("%-8s! %s"):format(prefix, l)) end
end

return P
