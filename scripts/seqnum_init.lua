-- Sequence number, set-up side (POSIX course example): creates the object holding a semaphore and a sequence number, or removes it (--remove)
local shm = require "shmhost"

local prog = "seqnum_init"
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

local function die(msg, code)
  io.stderr:write(prog, ": ", msg, "\n")
  os.exit(code or 1)
end

local function usage_error(msg)
  if msg then io.stderr:write(prog, ": ", msg, "\n") end
  io.stderr:write(usage, "\n")
  os.exit(2)
end

local o = {name = "/pshm_seqnum"}
local i = 1
while i <= #arg do
  local a = arg[i]
  if a == "-h" or a == "--help" then
    io.stderr:write(usage, "\n")
    os.exit(0)
  elseif a == "--name" then
    o.name = arg[i + 1] or usage_error("--name needs a value")
    i = i + 1
  elseif a == "--remove" then
    o.remove = true
  elseif a:sub(1, 1) == "/" then
    o.name = a
  elseif a:match("^%-?%d+$") and o.value == nil then
    o.value = math.tointeger(tonumber(a))
    if not o.value or o.value < -2^31 or o.value >= 2^31 then
      usage_error("INIT-VALUE must fit a C int: " .. a)
    end
  else
    usage_error("unexpected argument '" .. a .. "'")
  end
  i = i + 1
end
if o.name:sub(1, 1) ~= "/" or o.name:find("/", 2, true) or #o.name < 2 then
  usage_error("NAME must look like /name")
end

if o.remove then
  if o.value then usage_error("--remove takes no INIT-VALUE") end
  local seg, msg = shm.open(o.name)
  if not seg then die(msg) end
  local ok, umsg = seg:unlink()
  seg:close()
  if not ok then die(umsg) end
  os.exit(0)
end

-- Like the course's program, an earlier instance is removed first: a process that died in
-- seqnum_get while holding the semaphore would otherwise leave it taken for ever.
local old = shm.open(o.name)
if old then
  old:unlink()
  old:close()
end
local seg, msg = shm.open(o.name, {create = true, excl = true, size = Shmbuf.size, keep = true})
if not seg then die(msg) end
local d = Shmbuf:view(seg)
-- The number first, then the semaphore that makes it available, so a seqnum_get that opens
-- the object early finds it taken (value 0 from the new, zero-filled pages) until it is ready.
d.seqnum = o.value or 0
local ok, emsg = d.sem:init(1)
if not ok then
  seg:unlink()
  die(emsg)
end
seg:close()
