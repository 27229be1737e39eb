-- Sequence number, set-up side (POSIX course example): creates the object holding a semaphore and a sequence number, or removes it (--remove)
local shm = require "shmhost"
local cli = require "cli"
local SQ = require "seqnum"

local usage = [[
usage: shmhost seqnum_init [--name /NAME | /NAME] [INIT-VALUE]
       shmhost seqnum_init --remove [--name /NAME | /NAME]
  Creates the POSIX shared memory object NAME (default /pshm_seqnum) holding
      struct shmbuf { sem_t sem; int seqnum; };
  replacing any earlier one, sets the semaphore to 1 (available) and the sequence number to
  INIT-VALUE (default 0). The object stays after this command ends, for `shmhost seqnum_get`;
  --remove removes it again.]]

-- INIT-VALUE is a C int.
local o = SQ.options{
  prog = "seqnum_init", usage = usage,
  {"--remove"},
  number = "value", check = cli.integer(-(1 << 31), (1 << 31) - 1), what = "INIT-VALUE",
}
local Shmbuf = SQ.Shmbuf

if o.remove then
  if o.value then cli.usage_error("--remove takes no INIT-VALUE") end
  local seg, msg = shm.open(o.name)
  if not seg then cli.die(msg) end
  local ok, umsg = seg:unlink()
  seg:close()
  if not ok then cli.die(umsg) end
  shm.exit(0)
end

-- Like the course's program, an earlier instance is removed first: a process that died in
-- seqnum_get while holding the semaphore would otherwise leave it taken for ever.
local old = shm.open(o.name)
if old then
  old:unlink()
  old:close()
end
local seg, msg = shm.open(o.name, {create = true, excl = true, size = Shmbuf.size, keep = true})
if not seg then cli.die(msg) end
local d = Shmbuf:view(seg)
-- The number first, then the semaphore that makes it available, so a seqnum_get that opens
-- the object early finds it taken (value 0 from the new, zero-filled pages) until it is ready.
d.seqnum = o.value or 0
local ok, emsg = d.sem:init(1)
if not ok then
  seg:unlink()
  cli.die(emsg)
end
seg:close()
