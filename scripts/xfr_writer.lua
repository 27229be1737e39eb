-- Stream transfer, writer side (POSIX course exercise): stdin into a segment a block at a time, two semaphores in alternating access (or --ring)
local shm = require "shmhost"
local X = require "xfr"
local cli = require "cli"

local usage = [[
usage: shmhost xfr_writer [--name /NAME] [--block BYTES] [--ring] < INPUT
  Copies stdin into the POSIX shared memory object NAME (default /pshm_xfr), one block
  (default 65536 bytes) at a time, for `shmhost xfr_reader`; start the two in any order.
  The end of the data is a block of 0 bytes; the writer removes the object at the end.
  --ring   use the shared-memory ring instead of two semaphores (give it to both sides)]]

local o = X.options("xfr_writer", arg, usage)
local mode = o.ring and X.MODE_RING or X.MODE_SEM
local size = X.segment_size(mode, o.block)
local off = X.OFF

-- Create the object. One left by a writer that died is replaced with a warning; one whose
-- writer is alive is not ours to take.
local seg, msg, errno = shm.open(o.name, {create = true, excl = true, size = size})
if not seg and errno == shm.errno.EEXIST then
  local old = shm.open(o.name)
  local pid = old and old:size() >= X.Header.size and old:load("i32", off.writer_pid) or 0
  if X.alive(pid) then
    cli.die(("%s is in use by another writer (pid %d)"):format(o.name, pid))
  end
  cli.say(("warning: replacing stale %s%s"):format(o.name,
          pid > 0 and (" (writer pid %d is gone)"):format(pid) or ""))
  if old then old:unlink(); old:close() end
  seg, msg = shm.open(o.name, {create = true, excl = true, size = size})
end
if not seg then cli.die(msg) end

seg:store("i32", off.writer_pid, shm.pid())
seg:store("i32", off.mode, mode)
seg:store("i32", off.block, o.block)
local wsem, rsem, ring
if mode == X.MODE_SEM then
  -- wsem = 1, rsem = 0: the writer has the first turn.
  wsem, rsem = shm.sem(seg, off.wsem), shm.sem(seg, off.rsem)
  assert(wsem:init(1))
  assert(rsem:init(0))
else
  ring = shm.ring.create(seg, X.DATA, X.ring_capacity(o.block))
end
-- Last, so a reader that sees it sees everything above.
seg:store("i32", off.ready, 1)

-- A reader that dies ends the writer; exit runs the cleanup that removes the object.
local watchdog = X.watchdog(function() return seg:load("i32", off.reader_pid) end,
  function(pid) cli.die(("reader (pid %d) died"):format(pid)) end)

local read = X.stdin_reader(o.block)
local progress = X.progress()
local ok, err = pcall(function()
  if mode == X.MODE_SEM then
    while true do
      local s = read()
      X.take(wsem)
      if s == nil then break end
      seg:write(X.DATA, s)
      seg:store("i32", off.cnt, #s)
      rsem:post()
      progress.add(#s)
    end
    -- The end of the data, then the reader's last turn back: it has seen the end, so the
    -- object can go even if the reader started after everything was written.
    seg:store("i32", off.cnt, 0)
    rsem:post()
    X.take(wsem)
  else
    while true do
      local s = read()
      if s == nil then break end
      local done, perr = ring:put(s)
      if not done then error("ring: " .. tostring(perr), 0) end
      progress.add(#s)
    end
    local done, perr = ring:put("")
    if not done then error("ring: " .. tostring(perr), 0) end
    while seg:load("i32", off.done) == 0 do shm.sleep(0.005) end
  end
end)
if not ok then
  local pid = seg:load("i32", off.reader_pid)
  if tostring(err):find("peer died") then err = ("reader (pid %d) died"):format(pid) end
  cli.die(tostring(err))
end
progress.finish()
watchdog:close()
if ring then ring:close() end
seg:close() -- created here, so this removes it
