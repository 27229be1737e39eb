-- What xfr_writer and xfr_reader share: the segment's layout, the command line, reading stdin
-- without blocking the loop, the watchdog on the peer, and the progress line.
--
-- The segment (POSIX shared memory, default /pshm_xfr) starts with this header:
--
--   struct xfr_hdr { sem_t wsem; sem_t rsem; int ready; int mode; int block; int cnt;
--                    int done; pid_t writer_pid; pid_t reader_pid; };
--
-- then, 64-byte aligned, either the data buffer of `block` bytes (semaphore mode: the writer
-- fills it and sets cnt, posts rsem; the reader copies cnt bytes out and posts wsem; cnt 0 is
-- the end of the data) or a ring (--ring: one message per block, an empty message ends it).
-- `ready` is stored last by the writer: a reader that sees it sees an initialised segment.
local shm = require "shmhost"
local uv = require "luv"
local cli = require "cli"

local X = {}

X.Header = shm.layout{
  {"wsem", "sem"}, {"rsem", "sem"}, {"ready", "int"}, {"mode", "int"}, {"block", "int"},
  {"cnt", "int"}, {"done", "int"}, {"writer_pid", "pid_t"}, {"reader_pid", "pid_t"},
}
X.MODE_SEM, X.MODE_RING = 1, 2
X.DATA = (X.Header.size + 63) & ~63
X.MAX_BLOCK = 1 << 28 -- 256 MiB: a ring of four such blocks stays under its 4 GiB limit

function X.off(field) return X.Header:offset(field) end
-- Every field's offset by name: X.OFF.cnt.
X.OFF = {}
for _, f in ipairs(X.Header:fields()) do X.OFF[f.name] = f.offset end

-- Ring capacity for a block size: room for four full blocks in flight.
function X.ring_capacity(block) return 4 * ((block + 8 + 7) & ~7) end

function X.segment_size(mode, block)
  if mode == X.MODE_RING then return X.DATA + shm.ring.footprint(X.ring_capacity(block)) end
  return X.DATA + block
end

-- Parses --name, --block, --wait, --ring (and -h) for `prog`; a mistake is a usage error.
-- Both sides take all four, so one command line can be given to either.
function X.options(prog, args, usage)
  return cli.parse(args, {
    prog = prog, usage = usage, unknown = "unknown argument '%s'",
    defaults = {name = "/pshm_xfr", block = 65536, wait = 10, ring = false},
    {"--name", cli.posix_name},
    {"--block", cli.integer(1, X.MAX_BLOCK)},
    {"--wait", cli.seconds},
    {"--ring"},
  })
end

-- Waits for a semaphore in short slices, so the loop (and the watchdog on the peer) keeps
-- running; any failure but the timeout ends the process.
function X.take(sem)
  while true do
    local ok, err = sem:wait(0.25)
    if ok then return end
    if err ~= "timeout" then cli.die("sem_wait: " .. tostring(err)) end
  end
end

-- Whether the process `pid` is alive: it exists and is not a zombie (a dead peer that is our
-- shell's child stays a zombie until the shell reaps it).
function X.alive(pid)
  if not pid or pid <= 0 then return false end
  local ok, _, name = uv.kill(pid, 0)
  if not ok and name == "ESRCH" then return false end
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return ok ~= nil end
  local stat = f:read("a")
  f:close()
  local state = stat:match("%) (%a)")
  return state ~= "Z" and state ~= "X"
end

-- Checks every 100 ms that the peer whose pid `peer()` returns (nil or 0: not arrived yet)
-- is alive; when it is not, calls on_death(pid). Returns the timer (close it when done).
function X.watchdog(peer, on_death)
  local t = uv.new_timer()
  t:start(100, 100, function()
    local pid = peer()
    if pid and pid > 0 and not X.alive(pid) then
      t:stop()
      on_death(pid)
    end
  end)
  t:unref() -- it must not keep the process alive by itself
  return t
end

-- A function that returns the next chunk of stdin (at most `block` bytes), or nil at the end.
-- A regular file (or /dev/null) is read directly: that never waits long. A pipe or terminal is
-- read through libuv, so the loop (the watchdog, the semaphore waits) keeps running while no
-- input comes; reading pauses while two blocks are buffered. What libuv hands over (up to
-- 64 KiB a read) is queued as it came and cut into blocks with a position in the first piece,
-- so a small block costs a copy of itself, not of everything buffered.
function X.stdin_reader(block)
  local kind = uv.guess_handle(0)
  if kind ~= "pipe" and kind ~= "tty" then
    return function()
      local s, err = io.stdin:read(block)
      if s == nil and err then error("read stdin: " .. err, 0) end
      return s
    end
  end
  local h = kind == "tty" and uv.new_tty(0, true) or uv.new_pipe(false)
  if kind == "pipe" then assert(h:open(0)) end
  local queue, first, last, pos = {}, 1, 0, 1 -- pieces first..last; pos: next byte of first
  local buffered, eof, rerr, waiter, reading = 0, false, nil, nil, false
  local onread
  local function start()
    if not reading and not eof and buffered < 2 * block then
      reading = true
      h:read_start(onread)
    end
  end
  onread = function(err, data)
    if err then rerr, eof = err, true
    elseif data then
      last = last + 1
      queue[last] = data
      buffered = buffered + #data
    else eof = true end
    if eof or buffered >= 2 * block then
      h:read_stop()
      reading = false
    end
    if eof and not h:is_closing() then
      -- libuv made the descriptor non-blocking, which whoever shares it would see too.
      if kind == "pipe" then h:set_blocking(true) end
      h:close()
    end
    if waiter then
      local w = waiter
      waiter = nil
      shm.resume(w)
    end
  end
  start()
  return function()
    while buffered == 0 and not eof do
      start()
      waiter = coroutine.running()
      shm.suspend()
    end
    if rerr then error("read stdin: " .. rerr, 0) end
    if buffered == 0 then return nil end
    local parts, want = {}, block
    while want > 0 and first <= last do
      local piece = queue[first]
      local left = #piece - pos + 1
      if left <= want then
        parts[#parts + 1] = pos == 1 and piece or piece:sub(pos)
        queue[first], first, pos = nil, first + 1, 1
        want = want - left
      else
        parts[#parts + 1] = piece:sub(pos, pos + want - 1)
        pos = pos + want
        want = 0
      end
    end
    buffered = buffered - (block - want)
    start()
    return #parts == 1 and parts[1] or table.concat(parts)
  end
end

-- The reader's output. A regular file (or /dev/null) is written through io.stdout, fully
-- buffered: a write to a file never waits long. A pipe or terminal is written through libuv,
-- so a downstream that stops reading never freezes the loop (and with it the watch on the
-- writer, which must still end the reader within a second): write(s) queues s and waits only
-- while more than two blocks are queued; finish() waits until everything is written.
function X.stdout_writer(block)
  local kind = uv.guess_handle(1)
  if kind ~= "pipe" and kind ~= "tty" then
    io.stdout:setvbuf("full", 1 << 16)
    local function check(ok, err)
      if not ok then cli.die("write stdout: " .. tostring(err)) end
    end
    return {write = function(s) check(io.stdout:write(s)) end,
            finish = function() check(io.stdout:flush()) end}
  end
  local h = kind == "tty" and uv.new_tty(1, false) or uv.new_pipe(false)
  if kind == "pipe" then assert(h:open(1)) end
  local waiter, failed
  local function on_write(err)
    if err and not failed then failed = err end
    if waiter then
      local w = waiter
      waiter = nil
      shm.resume(w)
    end
  end
  local function drain(limit)
    while not failed and h:get_write_queue_size() > limit do
      waiter = coroutine.running()
      shm.suspend()
    end
    if failed then cli.die("write stdout: " .. failed) end
  end
  local w = {}
  function w.write(s)
    if #s == 0 then return end
    local ok, err = h:write(s, on_write)
    if not ok then cli.die("write stdout: " .. tostring(err)) end
    drain(2 * block)
  end
  function w.finish()
    drain(0)
    -- libuv made the descriptor non-blocking, which whoever shares the pipe would see too.
    if kind == "pipe" then h:set_blocking(true) end
    h:close()
  end
  return w
end

-- A progress line on stderr, redrawn at most four times a second, only on a terminal.
function X.progress()
  local p = {bytes = 0, t0 = shm.now(), last = 0, on = uv.guess_handle(2) == "tty"}
  function p.add(n)
    p.bytes = p.bytes + n
    if p.on then
      local now = shm.now()
      if now - p.last >= 0.25 then
        p.last = now
        p.show(now)
      end
    end
  end
  function p.show(now)
    local dt = (now or shm.now()) - p.t0
    io.stderr:write(string.format("\r%d bytes  %.1f MiB/s  %.1f s ", p.bytes,
                                  dt > 0 and p.bytes / dt / 1048576 or 0, dt))
  end
  function p.finish()
    if p.on then
      p.show()
      io.stderr:write("\n")
    end
  end
  return p
end

return X
