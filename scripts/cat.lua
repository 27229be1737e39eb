-- Dump a shared-memory segment (POSIX name, System V id or 0xKEY) as raw bytes or --hex
--
-- usage: shmhost cat NAME|ID|0xKEY [--hex] [--offset N] [--length N]
--
-- NAME is a POSIX name ("/x"; the slash may be left out), ID a System V segment id as ipcs
-- shows it, 0xKEY a System V key. The segment is mapped read-only, so cat never changes it.
-- Offsets are 0-based bytes. --hex prints the canonical hex+ASCII layout of hexdump -C.
local shm = require "shmhost"

local function usage(code)
  io.stderr:write("usage: shmhost cat NAME|ID|0xKEY [--hex] [--offset N] [--length N]\n")
  os.exit(code)
end

local function die(msg)
  io.stderr:write("cat: ", msg, "\n")
  os.exit(1)
end

local target, hex, offset, length
local i = 1
while i <= #arg do
  local a = arg[i]
  if a == "--hex" then hex = true
  elseif a == "--offset" or a == "--length" then
    local n = arg[i + 1] and math.tointeger(tonumber(arg[i + 1]))
    if not n or n < 0 then
      io.stderr:write("cat: ", a, " needs a non-negative integer\n")
      usage(2)
    end
    if a == "--offset" then offset = n else length = n end
    i = i + 1
  elseif a == "-h" or a == "--help" then usage(0)
  elseif a:sub(1, 2) == "--" or target then
    io.stderr:write("cat: unexpected argument '", a, "'\n")
    usage(2)
  else target = a end
  i = i + 1
end
if not target then usage(2) end

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
if not seg then die(err) end
local size = seg:size()
offset = offset or 0
if offset > size then die(string.format("offset %d is past the end of %s (%d bytes)", offset, target, size)) end
length = length or size - offset
if length > size - offset then
  die(string.format("offset %d + length %d is past the end of %s (%d bytes)", offset, length, target, size))
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
if not ok then die(tostring(e)) end
