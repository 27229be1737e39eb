-- Stream transfer, reader side (POSIX course exercise): a segment filled by xfr_writer to stdout, block by block, until a block of 0 bytes (--ring too)
local shm = require "shmhost"
local X = require "xfr"
local cli = require "cli"

local usage = [[
usage: shmhost xfr_reader [--name /NAME] [--wait S] [--ring] > OUTPUT
  Copies what `shmhost xfr_writer` sends through the POSIX shared memory object NAME
  (default /pshm_xfr) to stdout. Started first, it waits up to S seconds (default 10) for
  the writer.
  --ring   the writer uses the shared-memory ring (give it to both sides)]]

local o = X.options("xfr_reader", arg, usage)
local off = X.OFF

-- Wait for a writer's object to exist and be initialised. One whose writer is dead is a
-- leftover: a new writer will replace it, so keep waiting.
local deadline = shm.now() + o.wait
local seg
while true do
  local s = shm.open(o.name)
  if s and s:size() >= X.DATA and s:load("i32", off.ready) == 1 then
    if X.alive(s:load("i32", off.writer_pid)) then seg = s; break end
  end
  if s then s:close() end
  if shm.now() >= deadline then
    cli.die(("no writer on %s after %g s"):format(o.name, o.wait))
  end
  shm.sleep(0.02)
end

local mode, block = seg:load("i32", off.mode), seg:load("i32", off.block)
if mode ~= X.MODE_SEM and mode ~= X.MODE_RING or block < 1 or block > X.MAX_BLOCK
   or X.segment_size(mode, block) > seg:size() then
  cli.die(o.name .. " does not hold a valid transfer header")
end
if (mode == X.MODE_RING) ~= o.ring then
  cli.die(("the writer %s the ring: give --ring to both sides or to neither")
              :format(mode == X.MODE_RING and "uses" or "does not use"))
end
local me = shm.pid()
local took, other = seg:cas("i32", off.reader_pid, 0, me)
if not took then
  if X.alive(other) then cli.die(("%s already has a reader (pid %d)"):format(o.name, other)) end
  seg:store("i32", off.reader_pid, me)
end
local writer = seg:load("i32", off.writer_pid)

-- A writer that dies cannot remove its object any more: the reader does, then fails.
local function writer_died()
  seg:unlink()
  cli.die(("writer (pid %d) died"):format(writer))
end
local watchdog = X.watchdog(function() return writer end, writer_died)

local out = X.stdout_writer(block)
local progress = X.progress()
if mode == X.MODE_SEM then
  local wsem, rsem = shm.sem(seg, off.wsem), shm.sem(seg, off.rsem)
  while true do
    X.take(rsem)
    local n = seg:load("i32", off.cnt)
    if n < 0 or n > block then cli.die(("bad block count %d (block is %d)"):format(n, block)) end
    if n == 0 then break end
    -- The block is copied out, so the writer may fill the next one while this one goes out.
    local data = seg:read(X.DATA, n)
    wsem:post()
    out.write(data)
    progress.add(n)
  end
  out.finish()
  wsem:post() -- the writer may remove the object now
else
  local ring = assert(shm.ring.attach(seg, X.DATA))
  while true do
    local s, err = ring:get()
    if s == nil then
      if err == "peer died" then writer_died() end
      -- The writer closed its ring without the end mark: it was stopped (a signal ran its
      -- cleanup, which removes the object).
      if err == "peer closed" then
        cli.die(("writer (pid %d) stopped before the end of the data"):format(writer))
      end
      cli.die("ring: " .. tostring(err))
    end
    if #s == 0 then break end
    if #s > block then cli.die(("message of %d bytes, more than a block"):format(#s)) end
    out.write(s)
    progress.add(#s)
  end
  out.finish()
  seg:store("i32", off.done, 1)
  ring:close()
end
progress.finish()
watchdog:close()
seg:close()
