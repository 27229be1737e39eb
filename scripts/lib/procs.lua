-- Child processes for tests, exercises and scripts: start a program with luv, feed its stdin,
-- collect its output (whole or line by line), give it a deadline, signal it (its whole process
-- group when it has one of its own), and wait for a line or for its end from a task without
-- blocking the loop. testlib, exercise and day56_procs are thin layers over this module.
--
--   local procs = require "procs"
--   local c = procs.start{"/bin/sh", "-c", "echo ready; cat", stdin = true, timeout = 10}
--   c:wait_line("^ready$", 5)   -> the line, or nil at the timeout or when the child ended
--   c:write("hello\n")          c:close_stdin()
--   c:wait(5)                   -> code, signal; nil while it still runs after 5 s
--   c:output()                  -> stdout, stderr collected so far
--   c:lines()                   -> the complete stdout lines so far
--   c:await(function(c) ... end, 5)  -> the first non-nil answer, asked as output comes
--   c:kill("sigkill")           procs.cleanup(5) kills every child still running, waits 5 s
--
-- procs.start{PROG, ARG..., option = ...}; options:
--   stdin   a string (written, then the pipe is closed), true (a pipe kept for c:write), or a
--           file descriptor the child gets; nil or false gives it /dev/null.
--   stdout, stderr  a file descriptor the child gets; nil collects the stream here.
--   env     extra variables on top of this process's environment: "K=V" strings, or K = V.
--   cwd     the child's working directory.
--   timeout seconds (default 30; math.huge for none) after which the child, or its group, is
--           killed with SIGKILL and c.timed_out is set.
--   group   true (the default): the child runs in a session and process group of its own
--           (setsid), so c:kill reaches what it started too. false: it stays in this
--           process's group, so whoever kills our group kills it as well.
-- Fields: c.pid, c.group, c.exited, c.code, c.signal, c.timed_out, c.finished (ended and its
-- output all read). Every wait needs a task except with a timeout of 0, which only looks.
-- Children still running when the script ends by an error, shmhost.exit or a signal are
-- killed (SIGKILL, their group) as the Lua state closes.
local shm = require "shmhost"
local uv = require "luv"

local procs = {}

local Child = {}
Child.__index = Child
procs.Child = Child

-- Children that have not ended yet, for procs.cleanup.
local running = {}

-- When this process ends before its children (an error, shmhost.exit, a signal), the deadline
-- timers are gone with the loop; the Lua state is closed last of all, and this finalizer then
-- kills what still runs, so no child outlives the script that started it. kill(2) needs no
-- loop.
procs._reaper = setmetatable({}, {__gc = function()
  for c in pairs(running) do
    if not c.exited then uv.kill(c.group and -c.pid or c.pid, "sigkill") end
  end
end})

-- After the child has ended, what it wrote is already in the pipe and is read at once; a pipe
-- still open after this long is held by a process it left behind, which may never close it.
local DRAIN_SECONDS = 2

local OPTIONS = {stdin = true, stdout = true, stderr = true, env = true, cwd = true,
                 timeout = true, group = true}

-- Milliseconds for a uv timer; a limit past a year is as good as none and stays an integer.
local function ms(secs) return math.floor(math.min(secs, 3e7) * 1000 + 0.5) end

local function close_handle(h)
  if h and not h:is_closing() then h:close() end
end

local function isfd(v) return math.type(v) == "integer" and v >= 0 end

-- ------------------------------------------------------------ waiting

-- Waiters are tasks suspended in c:await; each is woken once, by the event that satisfies its
-- condition or by its timer. The waiter itself travels as the first resume value, so a wake
-- that came from elsewhere is told apart.
local function wake(c, w, ...)
  for i, x in ipairs(c._waiters) do
    if x == w then table.remove(c._waiters, i) break end
  end
  close_handle(w.timer)
  -- A callback must never raise: pcall guards against a task that is no longer suspended.
  pcall(shm.resume, w.task, w, ...)
end

local function notify(c)
  if #c._waiters == 0 then return end
  for _, w in ipairs({table.unpack(c._waiters)}) do
    -- An error in a condition belongs to the waiting task, not to the luv callback here.
    local ok, v = pcall(w.cond, c)
    if not ok then wake(c, w, nil, v)
    elseif v ~= nil then wake(c, w, v) end
  end
end

local NO_TASK = "procs: waiting for a child: cannot wait outside a task (start one with " ..
                "shmhost.spawn)"

-- Waits until cond(c) returns something other than nil (it is asked now, on every piece of
-- output and at the end) and returns that, or nil after `timeout` seconds (nil: no limit).
-- As every wait of shmhost, it needs a task each time, unless the timeout is 0.
function Child:await(cond, timeout)
  if type(cond) ~= "function" then
    error("bad argument #1 to 'await' (function expected, got " .. type(cond) .. ")", 2)
  end
  if timeout ~= nil and (type(timeout) ~= "number" or timeout ~= timeout or timeout < 0) then
    error("bad argument #2 to 'await' (timeout: seconds >= 0 expected, got " ..
          tostring(timeout) .. ")", 2)
  end
  -- A luv callback or the main thread cannot yield; a coroutine that is not a task is caught
  -- by suspend below.
  if timeout ~= 0 and not coroutine.isyieldable() then error(NO_TASK, 2) end
  local v = cond(self)
  if v ~= nil or timeout == 0 then return v end
  local w = {task = coroutine.running(), cond = cond}
  self._waiters[#self._waiters + 1] = w
  if timeout and timeout < math.huge then
    w.timer = uv.new_timer()
    w.timer:start(ms(timeout), 0, function() wake(self, w) end)
  end
  -- pcall yields in Lua 5.4; it catches suspend's error outside a task so the waiter goes.
  local ok, who, res, err = pcall(shm.suspend)
  if who ~= w then
    for i, x in ipairs(self._waiters) do
      if x == w then table.remove(self._waiters, i) break end
    end
    close_handle(w.timer)
    if not ok then error(NO_TASK, 2) end
    error("procs: a wait for " .. self.prog .. " was resumed by someone else", 2)
  end
  if err ~= nil then error(err, 0) end
  return res
end

-- ------------------------------------------------------------ the child's end

local function finish(c)
  if c.finished or not c.exited or c._open > 0 then return end
  c.finished = true
  close_handle(c._drain)
  close_handle(c._stdin)
  c._stdin = nil
  notify(c)
end

local function stop_reading(c)
  for _, p in ipairs(c._pipes) do
    if not p:is_closing() then p:close(); c._open = c._open - 1 end
  end
  if c._partial ~= "" then
    c._lines[#c._lines + 1] = c._partial
    c._partial = ""
  end
  finish(c)
end

local function on_exit(c, code, signal)
  c.code, c.signal, c.exited = code, signal, true
  running[c] = nil
  close_handle(c._proc)
  close_handle(c._timer)
  if c._open > 0 then
    c._drain = uv.new_timer()
    c._drain:start(ms(DRAIN_SECONDS), 0, function() stop_reading(c) end)
    c._drain:unref()
  end
  finish(c)
  notify(c)
end

-- Collects one stream; stdout is also cut into lines as it comes.
local function reader(c, pipe, chunks, lines)
  return function(_, data)
    if data then
      chunks[#chunks + 1] = data
      if lines then
        local s = c._partial .. data
        local from = 1
        for line, nxt in s:gmatch("([^\n]*)\n()") do
          lines[#lines + 1] = line
          from = nxt
        end
        c._partial = s:sub(from)
      end
    else
      -- The end of the stream, or an error reading it: either way nothing more comes.
      if not pipe:is_closing() then pipe:close(); c._open = c._open - 1 end
      if lines and c._partial ~= "" then
        lines[#lines + 1] = c._partial
        c._partial = ""
      end
      finish(c)
    end
    notify(c)
  end
end

-- ------------------------------------------------------------ starting

local function bad_option(name, want, got)
  error(("procs.start: option '%s' must be %s (got %s)"):format(name, want, tostring(got)), 3)
end

local function environment(extra)
  local vars, order = {}, {}
  local function set(k, v)
    if vars[k] == nil then order[#order + 1] = k end
    vars[k] = v
  end
  for k, v in pairs(uv.os_environ()) do set(k, v) end
  for k, v in pairs(extra) do
    if math.type(k) == "integer" then
      local name, value = tostring(v):match("^([^=]+)=(.*)$")
      if not name then bad_option("env", '"K=V" strings or K = V', v) end
      set(name, value)
    elseif type(k) == "string" and (type(v) == "string" or type(v) == "number") then
      set(k, tostring(v))
    else
      bad_option("env", '"K=V" strings or K = V', k)
    end
  end
  local env = {}
  for _, k in ipairs(order) do env[#env + 1] = k .. "=" .. vars[k] end
  return env
end

-- Starts opts[1] with arguments opts[2..]; returns the child, or nil, "spawn PROG: message",
-- errno name when the program cannot be started. Bad options raise.
function procs.start(opts)
  if type(opts) ~= "table" then
    error("bad argument #1 to 'procs.start' (table expected, got " .. type(opts) .. ")", 2)
  end
  if type(opts[1]) ~= "string" or opts[1] == "" then
    error("procs.start: opts[1] must be the program to run (got " .. tostring(opts[1]) .. ")", 2)
  end
  for k in pairs(opts) do
    if math.type(k) ~= "integer" and not OPTIONS[k] then
      error("procs.start: unknown option '" .. tostring(k) .. "'", 2)
    end
  end
  local args = {}
  for i = 2, #opts do
    local a = opts[i]
    if type(a) ~= "string" and type(a) ~= "number" then
      error(("procs.start: argument #%d must be a string (got %s)"):format(i - 1, type(a)), 2)
    end
    args[#args + 1] = tostring(a)
  end
  local stdin = opts.stdin or nil
  if not (stdin == nil or stdin == true or type(stdin) == "string" or isfd(stdin)) then
    bad_option("stdin", "a string, true or a file descriptor", stdin)
  end
  for _, k in ipairs{"stdout", "stderr"} do
    if opts[k] ~= nil and not isfd(opts[k]) then bad_option(k, "a file descriptor", opts[k]) end
  end
  local timeout = opts.timeout or 30
  if type(timeout) ~= "number" or timeout ~= timeout or timeout <= 0 then
    bad_option("timeout", "seconds > 0", opts.timeout)
  end
  if opts.cwd ~= nil and type(opts.cwd) ~= "string" then bad_option("cwd", "a path", opts.cwd) end
  if opts.env ~= nil and type(opts.env) ~= "table" then bad_option("env", "a table", opts.env) end
  local group = opts.group
  if group == nil then group = true end
  if type(group) ~= "boolean" then bad_option("group", "true or false", group) end
  local env = opts.env and environment(opts.env)

  local c = setmetatable({prog = opts[1], group = group, exited = false, finished = false,
                          timed_out = false, _out = {}, _err = {}, _lines = {}, _partial = "",
                          _pipes = {}, _open = 0, _waiters = {}}, Child)
  local stdio = {nil, opts.stdout, opts.stderr}
  if stdin == true or type(stdin) == "string" then
    c._stdin = uv.new_pipe(false)
    stdio[1] = c._stdin
  elseif stdin ~= nil then
    stdio[1] = stdin
  end
  for fd = 2, 3 do
    if stdio[fd] == nil then
      stdio[fd] = uv.new_pipe(false)
      c._pipes[#c._pipes + 1] = stdio[fd]
    end
  end
  local handle, pid_or_err, errname = uv.spawn(opts[1], {
    args = args, env = env, cwd = opts.cwd, stdio = stdio,
    detached = group, -- libuv calls setsid(2) in the child: a new session and process group
  }, function(code, signal) on_exit(c, code, signal) end)
  if not handle then
    for _, p in ipairs(c._pipes) do p:close() end
    close_handle(c._stdin)
    return nil, "spawn " .. opts[1] .. ": " .. tostring(pid_or_err), errname
  end
  c._proc, c.pid = handle, pid_or_err
  running[c] = true
  c._open = #c._pipes
  local sinks = {}
  if opts.stdout == nil then sinks[#sinks + 1] = {c._out, c._lines} end
  if opts.stderr == nil then sinks[#sinks + 1] = {c._err} end
  for i, p in ipairs(c._pipes) do p:read_start(reader(c, p, sinks[i][1], sinks[i][2])) end
  if type(stdin) == "string" then
    c._stdin:write(stdin)
    c:close_stdin()
  end
  if timeout < math.huge then
    c._timer = uv.new_timer()
    c._timer:start(ms(timeout), 0, function()
      c.timed_out = true
      c:kill("sigkill")
    end)
    -- The deadline is a guard, not work: it must not keep the loop alive on its own.
    c._timer:unref()
  end
  return c
end

-- ------------------------------------------------------------ talking to it

-- Writes to the child's stdin (started with stdin = true). The write is queued: a child that
-- has ended loses it, and this process ignores SIGPIPE, so that is no crash.
function Child:write(s)
  if type(s) ~= "string" and type(s) ~= "number" then
    error("bad argument #1 to 'write' (string expected, got " .. type(s) .. ")", 2)
  end
  if not self._stdin or self._stdin:is_closing() then
    error("write: the stdin of " .. self.prog .. " is not open (start it with stdin = true)", 2)
  end
  self._stdin:write(tostring(s))
  return true
end

-- Closes the child's stdin once what was written has gone, so it reads end of file.
function Child:close_stdin()
  local p = self._stdin
  self._stdin = nil
  if p and not p:is_closing() then
    p:shutdown(function() close_handle(p) end)
  end
end

-- Sends `sig` (a name like "sigterm", the default, or a number) to the child's process group
-- when it has one, else to the child. Returns true, or nil, message, errno name.
function Child:kill(sig)
  sig = sig or "sigterm"
  -- luv turns a name it does not know into signal 0, which only checks: a typo would pass.
  local known = (type(sig) == "string" and sig:upper():find("^SIG") and uv.constants[sig:upper()])
                or (math.type(sig) == "integer" and sig >= 0 and sig <= 64)
  if not known then
    error("bad argument #1 to 'kill' (signal name or number expected, got " .. tostring(sig) .. ")", 2)
  end
  if self.exited then return nil, "kill " .. self.prog .. ": the process has ended", "ESRCH" end
  local ok, err, name = uv.kill(self.group and -self.pid or self.pid, sig)
  if not ok then return nil, "kill " .. self.prog .. ": " .. tostring(err), name end
  return true
end

-- ------------------------------------------------------------ its output and its end

-- The chunks of a stream joined, kept joined in the same table (the reader appends to it), so
-- polling the output while it grows stays linear.
local function joined(chunks)
  if #chunks > 1 then
    local s = table.concat(chunks)
    for i = #chunks, 2, -1 do chunks[i] = nil end
    chunks[1] = s
  end
  return chunks[1] or ""
end

-- What the child wrote to stdout and to stderr so far (collected streams only).
function Child:output()
  return joined(self._out), joined(self._err)
end

-- The complete stdout lines so far (and the last, unterminated one once stdout ended), in a
-- table that grows as lines come: read it, do not change it.
function Child:lines() return self._lines end

-- Waits until a stdout line matches the Lua pattern (lines seen before count too); returns
-- the first such line, or nil after `timeout` seconds (nil: no limit) or when the child ended
-- without one.
function Child:wait_line(pattern, timeout)
  if type(pattern) ~= "string" then
    error("bad argument #1 to 'wait_line' (pattern string expected, got " .. type(pattern) .. ")", 2)
  end
  local seen = 0
  local line = self:await(function(c)
    for i = seen + 1, #c._lines do
      if c._lines[i]:find(pattern) then return c._lines[i] end
    end
    seen = #c._lines
    if c.finished then return false end
  end, timeout)
  return line or nil
end

-- Waits until the child has ended and its output is read; returns code, signal, or nil after
-- `timeout` seconds (nil: no limit) while it still runs.
function Child:wait(timeout)
  local done = self:await(function(c) if c.finished then return true end end, timeout)
  if not done then return nil end
  return self.code, self.signal
end

-- Waits in the current task until cond() returns a true value or `timeout` seconds pass
-- (default 10), polling every `step` seconds (default 0.01); returns cond()'s last value.
-- For conditions no child event announces (a file appearing, a counter in a segment).
function procs.wait_until(cond, timeout, step)
  local deadline = shm.now() + (timeout or 10)
  local v = cond()
  while not v and shm.now() < deadline do
    shm.sleep(step or 0.01)
    v = cond()
  end
  return v
end

-- Sends SIGKILL to every child (its group) still running; from a task, then waits up to
-- `timeout` seconds (default 5) for each to end. Returns how many were still running.
function procs.cleanup(timeout)
  local list = {}
  for c in pairs(running) do list[#list + 1] = c end
  for _, c in ipairs(list) do c:kill("sigkill") end
  if timeout ~= 0 and coroutine.isyieldable() then
    local deadline = shm.now() + (timeout or 5)
    -- pcall: in a coroutine that is not a task the wait raises, and cleanup never does.
    for _, c in ipairs(list) do
      pcall(c.wait, c, math.max(0, deadline - shm.now()))
    end
  end
  return #list
end

return procs
