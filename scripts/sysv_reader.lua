-- System V reader (chapter 77): ftok key, shmget the writer's segment, attach read-only, print the message or --struct SensorData, detach
local shm = require "shmhost"

local usage = [[
usage: shmhost sysv_reader [options]
  --keyfile PATH   file for ftok (default /tmp/shm_key_file)
  --proj C         ftok project id, one character or 1-255 (default X)
  --struct         read struct SensorData { int sensor_id; double value; char status[16]; }]]

local function die(code, msg)
  io.stderr:write(msg, "\n")
  shm.exit(code)
end

local opts = {keyfile = "/tmp/shm_key_file", proj = "X"}
local i = 1
local function value_of(name)
  i = i + 1
  if arg[i] == nil then die(2, "sysv_reader: " .. name .. " needs a value\n" .. usage) end
  return arg[i]
end
while arg[i] ~= nil do
  local a = arg[i]
  if a == "--keyfile" then opts.keyfile = value_of(a)
  elseif a == "--proj" then opts.proj = value_of(a)
  elseif a == "--struct" then opts.struct = true
  elseif a == "-h" or a == "--help" then print(usage) shm.exit(0)
  else die(2, "sysv_reader: unknown option '" .. a .. "'\n" .. usage) end
  i = i + 1
end
local proj = opts.proj
if proj:match("^%d+$") then proj = tonumber(proj) end

local key, kerr = shm.ftok(opts.keyfile, proj)
if not key then die(1, kerr) end
print(string.format("Reader: Generated key: %d", key))

-- No IPC_CREAT: a reader must not make the segment it expects the writer to have made.
local seg, err = shm.sysv(key, {readonly = true})
if not seg then
  die(1, err .. "\nReader: Is the writer process running?")
end
print(string.format("Reader: Located shared memory segment with ID: %d", seg.id))

-- /proc/self/maps names a System V mapping "/SYSV<key>" with the segment id as its inode.
local function address(id)
  for line in io.lines("/proc/self/maps") do
    local from, inode, path = line:match("^(%x+)%-%x+%s+%S+%s+%x+%s+%S+%s+(%d+)%s+(%S+)")
    if path and path:sub(1, 5) == "/SYSV" and tonumber(inode) == id then return "0x" .. from end
  end
  return "(unknown)"
end
print("Reader: Shared memory attached at address: " .. address(seg.id))

print("Reader: Reading from shared memory...")
if opts.struct then
  local SensorData = shm.layout{ {"sensor_id", "int"}, {"value", "double"}, {"status", "char[16]"} }
  if seg:size() < SensorData.size then
    seg:detach()
    die(1, string.format("sysv_reader: the segment has %d bytes, struct SensorData needs %d",
                         seg:size(), SensorData.size))
  end
  local d = SensorData:view(seg)
  print(string.format("sensor_id=%d value=%.14g status=%s", d.sensor_id, d.value, d.status))
else
  local bytes = seg:read(0, seg:size())
  local msg = bytes:match("^[^%z]*")
  print(string.format('Reader: Message received: "%s"', msg))
end

seg:detach()
print("Reader: Shared memory detached.")
