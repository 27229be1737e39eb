-- System V writer (chapter 77): ftok key, shmget IPC_CREAT|IPC_EXCL with self-healing, write a message or --struct SensorData, wait for a reader, IPC_RMID
local shm = require "shmhost"
local uv = require "luv"

local usage = [[
usage: shmhost sysv_writer [options]
  --keyfile PATH   file for ftok (default /tmp/shm_key_file, created when missing)
  --proj C         ftok project id, one character or 1-255 (default X)
  --size N         segment size in bytes (default 1024; --struct: sizeof(struct SensorData))
  --mode MODE      permissions of the segment, octal (default 0600)
  --wait S         hold the segment until a reader has attached and detached, or S seconds
                   have passed (default 10)
  --message TEXT   the message (default "Hello from the writer process!")
  --struct         write struct SensorData { int sensor_id; double value; char status[16]; }
  --sensor-id N, --value X, --status TEXT   its fields (defaults 101, 98.6, "OK")]]

local function die(code, msg)
  io.stderr:write(msg, "\n")
  shm.exit(code)
end

local opts = {keyfile = "/tmp/shm_key_file", proj = "X", mode = "0600", wait = 10,
              message = "Hello from the writer process!", sensor_id = 101, value = 98.6,
              status = "OK"}
local i = 1
local function value_of(name)
  i = i + 1
  if arg[i] == nil then die(2, "sysv_writer: " .. name .. " needs a value\n" .. usage) end
  return arg[i]
end
local function number_of(name, integer)
  local s = value_of(name)
  local n = integer and math.tointeger(tonumber(s)) or tonumber(s)
  if n == nil then die(2, "sysv_writer: " .. name .. " needs a number, got '" .. s .. "'") end
  return n
end
while arg[i] ~= nil do
  local a = arg[i]
  if a == "--keyfile" then opts.keyfile = value_of(a)
  elseif a == "--proj" then opts.proj = value_of(a)
  elseif a == "--size" then opts.size = number_of(a, true)
  elseif a == "--mode" then opts.mode = value_of(a)
  elseif a == "--wait" then opts.wait = number_of(a)
  elseif a == "--message" then opts.message = value_of(a)
  elseif a == "--struct" then opts.struct = true
  elseif a == "--sensor-id" then opts.sensor_id = number_of(a, true)
  elseif a == "--value" then opts.value = number_of(a)
  elseif a == "--status" then opts.status = value_of(a)
  elseif a == "-h" or a == "--help" then print(usage) shm.exit(0)
  else die(2, "sysv_writer: unknown option '" .. a .. "'\n" .. usage) end
  i = i + 1
end
if opts.wait < 0 then die(2, "sysv_writer: --wait must not be negative") end
local proj = opts.proj
if proj:match("^%d+$") then proj = tonumber(proj) end

local SensorData = shm.layout{ {"sensor_id", "int"}, {"value", "double"}, {"status", "char[16]"} }
local size = opts.size or (opts.struct and SensorData.size or 1024)
if size <= 0 then die(2, "sysv_writer: --size must be positive") end
if opts.struct and size < SensorData.size then
  die(2, string.format("sysv_writer: --size %d is smaller than struct SensorData (%d bytes)",
                       size, SensorData.size))
end

-- ftok needs an existing file; make the key file the way `touch` would.
if not uv.fs_stat(opts.keyfile) then
  local fd, err = uv.fs_open(opts.keyfile, "a", tonumber("644", 8))
  if not fd then die(1, "sysv_writer: cannot create key file " .. opts.keyfile .. ": " .. err) end
  uv.fs_close(fd)
  io.stderr:write("sysv_writer: created key file ", opts.keyfile, "\n")
end
local key, kerr = shm.ftok(opts.keyfile, proj)
if not key then die(1, kerr) end
print(string.format("Writer: Generated key: %d", key))

local function alive(pid)
  if pid <= 0 then return false end
  local ok, err = uv.kill(pid, 0)
  -- EPERM: the process exists but belongs to someone else.
  if not (ok == 0 or (type(err) == "string" and err:find("EPERM", 1, true) ~= nil)) then
    return false
  end
  -- A killed process not yet reaped still answers kill(pid, 0); its state is then Z.
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return true end
  local stat = f:read("a")
  f:close()
  return stat:match("^%d+ %b() (%a)") ~= "Z"
end

-- What the kernel says about the segment with key `k`, from /proc/sysvipc/shm (columns named
-- by its header line): looking there does not attach, so a live writer waiting for its
-- reader never mistakes this look for a reader that came and went.
local function sysv_entry(k)
  local f = io.open("/proc/sysvipc/shm")
  if not f then return nil end
  local cols = {}
  for name in (f:read("l") or ""):gmatch("%S+") do cols[#cols + 1] = name end
  for line in f:lines() do
    local t, j = {}, 0
    for v in line:gmatch("%S+") do j = j + 1; t[cols[j] or j] = math.tointeger(tonumber(v)) end
    if t.key == k then f:close() return t end
  end
  f:close()
  return nil
end

-- IPC_CREAT|IPC_EXCL makes sure this run owns a fresh segment. EEXIST means an earlier run
-- left one behind (a writer killed before IPC_RMID) or a writer is running now: a segment
-- nobody is attached to, or whose creator is gone, is removed and created again.
local function create()
  return shm.sysv(key, {create = true, excl = true, size = size, mode = opts.mode})
end
local seg, err, errno = create()
if not seg and errno == shm.errno.EEXIST then
  local e = sysv_entry(key)
  if e and e.nattch > 0 and alive(e.cpid) then
    die(1, string.format("sysv_writer: segment id %d with key 0x%08x is in use by a live writer " ..
                         "(pid %d, %d attached); not replacing it", e.shmid, key & 0xffffffff,
                         e.cpid, e.nattch))
  end
  if e then
    io.stderr:write(string.format("warning: removing stale segment id %d with key 0x%08x " ..
                                  "(creator pid %d %s, %d attached)\n", e.shmid, key & 0xffffffff,
                                  e.cpid, alive(e.cpid) and "alive" or "gone", e.nattch))
    local old, oerr = shm.sysv_attach(e.shmid, {readonly = true})
    if not old then die(1, "sysv_writer: " .. oerr) end
    local ok, rerr = old:remove()
    old:detach()
    if not ok then die(1, "sysv_writer: " .. rerr) end
  end
  seg, err, errno = create()
end
if not seg then die(1, "sysv_writer: " .. err) end
print(string.format("Writer: Shared memory segment created with ID: %d", seg.id))

-- Where shmat put the segment: /proc/self/maps names a System V mapping "/SYSV<key>" with the
-- segment id as its inode.
local function address(id)
  for line in io.lines("/proc/self/maps") do
    local from, inode, path = line:match("^(%x+)%-%x+%s+%S+%s+%x+%s+%S+%s+(%d+)%s+(%S+)")
    if path and path:sub(1, 5) == "/SYSV" and tonumber(inode) == id then return "0x" .. from end
  end
  return "(unknown)"
end
print("Writer: Shared memory attached at address: " .. address(seg.id))

if opts.struct then
  print("Writer: Writing SensorData to shared memory...")
  local d = SensorData:view(seg)
  d.sensor_id = opts.sensor_id
  d.value = opts.value
  d.status = opts.status
  print(string.format("Writer: SensorData written (sensor_id=%d value=%.14g status=%s). " ..
                      "Waiting for reader...", opts.sensor_id, opts.value, opts.status))
else
  if #opts.message >= size then
    die(1, string.format("sysv_writer: the message (%d bytes) does not fit in %d bytes with its NUL",
                         #opts.message, size))
  end
  print("Writer: Writing message to shared memory...")
  seg:write(0, opts.message .. "\0")
  print("Writer: Message written. Waiting for reader...")
end

-- A reader has come and gone when the last attach or detach was not ours and only this
-- process is attached again (shm_lpid is the pid of the last shmat/shmdt).
local me = shm.pid()
local deadline = shm.now() + opts.wait
while shm.now() < deadline do
  local st = assert(seg:stat())
  if st.lpid ~= me and st.nattch <= 1 then break end
  shm.sleep(0.02)
end

-- IPC_RMID while still attached: the kernel destroys the segment at the last detach, so it
-- is gone even if this process dies in between.
local ok, rerr = seg:remove()
seg:detach()
print("Writer: Shared memory detached.")
if not ok then die(1, "sysv_writer: " .. rerr) end
print("Writer: Shared memory segment marked for removal.")
