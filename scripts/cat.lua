-- Dump a shared-memory segment (POSIX name, System V id or 0xKEY) as raw bytes or --hex
--
-- usage: shmhost cat NAME|ID|0xKEY [--hex] [--offset N] [--length N]
--
-- NAME is a POSIX name ("/x"; the slash may be left out), ID a System V segment id as ipcs
-- shows it, 0xKEY a System V key. The segment is mapped read-only, so cat never changes it.
-- Offsets are 0-based bytes. --hex prints the canonical hex+ASCII layout of hexdump -C.
local shm = require "shmhost"
local cli = require "cli"

local USAGE = "usage: shmhost cat NAME|ID|0xKEY [--hex] [--offset N] [--length N]"

local o = cli.parse(arg, {
  prog = "cat", usage = USAGE,
  unknown = "unexpected argument '%s'",
  {"--hex"},
  {"--offset", cli.integer(0)},
  {"--length", cli.integer(0)},
  positional = "target",
})
if not o.target then cli.usage_error() end
local target, hex, offset, length = o.target, o.hex, o.offset, o.length

-- Opens what the user named, read-only.
local function open(t)
  if t:match("^0[xX]%x+$") then return shm.sysv(tonumber(t), {readonly = true}) end
  if t:match("^%d+$") then return shm.sysv_attach(tonumber(t), {readonly = true}) end
  if t:sub(1, 1) ~= "/" then t = "/" .. t end
  local ok, seg, err = pcall(shm.open, t, {readonly = true})
  if not ok then return nil, seg end
  return seg, err
end

local seg, err = open(target)
if not seg then cli.die(err) end
local size = seg:size()
offset = offset or 0
if offset > size then cli.die(string.format("offset %d is past the end of %s (%d bytes)", offset, target, size)) end
length = length or size - offset
if length > size - offset then
  cli.die(string.format("offset %d + length %d is past the end of %s (%d bytes)", offset, length, target, size))
end

local CHUNK = 1 << 16
local out = io.stdout
out:setvbuf("full")

local function hexline(off, bytes)
  local h = {}
  for k = 1, 16 do
    h[#h + 1] = k <= #bytes and string.format("%02x ", bytes:byte(k)) or "   "
    if k == 8 then h[#h + 1] = " " end
  end
  return string.format("%08x  %s |%s|\n", off, table.concat(h), (bytes:gsub("[^\32-\126]", ".")))
end

-- Repeated lines collapse to one "*", as hexdump -C does.
local last, squeezing = nil, false
local pending = ""
local function emit_hex(off, data, final)
  data = pending .. data
  local pos = 1
  while #data - pos + 1 >= 16 or (final and pos <= #data) do
    local line = data:sub(pos, pos + 15)
    if line == last and #line == 16 then
      if not squeezing then out:write("*\n") end
      squeezing = true
    else
      out:write(hexline(off + pos - 1, line))
      last, squeezing = line, false
    end
    pos = pos + 16
  end
  pending = data:sub(pos)
  return off + pos - 1
end

local ok, e = pcall(function()
  local pos, stop = offset, offset + length
  local hexpos = offset
  while pos < stop do
    local n = math.min(CHUNK, stop - pos)
    local data = seg:read(pos, n)
    if hex then hexpos = emit_hex(hexpos, data, pos + n >= stop)
    else out:write(data) end
    pos = pos + n
  end
  if hex and length > 0 then out:write(string.format("%08x\n", stop)) end
end)
out:flush()
seg:detach()
if not ok then cli.die(tostring(e)) end
