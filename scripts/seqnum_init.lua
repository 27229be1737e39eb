-- Sequence number, set-up side (POSIX course example): creates the object holding a semaphore and a sequence number, or removes it (--remove)
local shm = require "shmhost"
local cli = require "cli"

local usage = [[
usage: shmhost seqnum_init [--name /NAME | /NAME] [INIT-VALUE]
       shmhost seqnum_init --remove [--name /NAME | /NAME]
  Creates the POSIX shared memory object NAME (default /pshm_seqnum) holding
      struct shmbuf { sem_t sem; int seqnum; };
  replacing any earlier one, sets the semaphore to 1 (available) and the sequence number to
  INIT-VALUE (default 0). The object stays after this command ends, for `shmhost seqnum_get`;
  --remove removes it again.]]

-- The layout both scripts share; it is the course's struct byte for byte.
local Shmbuf = shm.layout{{"sem", "sem"}, {"seqnum", "int"}}

-- Words: /NAME (as --name) and INIT-VALUE, a C int, in any order.
local o = cli.parse(arg, {
  prog = "seqnum_init", usage = usage, unknown = "unexpected argument '%s'",
  defaults = {name = "/pshm_seqnum"},
  {"--name", cli.posix_name},
  {"--remove"},
  positional = function(o, word)
    if word:sub(1, 1) == "/" then
      local name, msg = cli.posix_name(word, "NAME")
      o.name = name or o.name
      return name ~= nil, msg
    end
    if o.value ~= nil or not word:match("^%-?%d+$") then return false end
    local msg
    o.value, msg = cli.integer(-(1 << 31), (1 << 31) - 1)(word, "INIT-VALUE")
    return o.value ~= nil, msg
  end,
})

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
