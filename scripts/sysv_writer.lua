-- System V writer (chapter 77): ftok key, shmget IPC_CREAT|IPC_EXCL with self-healing, write a message or --struct SensorData, wait for a reader, IPC_RMID
local shm = require "shmhost"
local uv = require "luv"
local cli = require "cli"
local S = require "sysv"

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

-- status is a char[16]: at most 15 bytes and the NUL.
local function status(word, opt)
  if #word < 16 and not word:find("\0", 1, true) then return word end
  return nil, ("%s must be at most 15 bytes, got '%s'"):format(opt, word)
end

local opts = S.options("sysv_writer", usage, {
  defaults = {mode = "0600", wait = 10, message = "Hello from the writer process!",
              sensor_id = 101, value = 98.6, status = "OK"},
  {"--size", cli.integer(1)},
  {"--mode", cli.string},
  {"--wait", cli.seconds},
  {"--message", cli.string},
  {"--sensor-id", cli.integer(-(1 << 31), (1 << 31) - 1)},
  {"--value", cli.number},
  {"--status", status},
})

local SensorData = S.SensorData
local size = opts.size or (opts.struct and SensorData.size or 1024)
if opts.struct and size < SensorData.size then
  cli.usage_error(("--size %d is smaller than struct SensorData (%d bytes)")
                  :format(size, SensorData.size))
end

-- ftok needs an existing file; make the key file the way `touch` would.
if not uv.fs_stat(opts.keyfile) then
  local fd, err = uv.fs_open(opts.keyfile, "a", tonumber("644", 8))
  if not fd then cli.die("cannot create key file " .. opts.keyfile .. ": " .. err) end
  uv.fs_close(fd)
  cli.say("created key file " .. opts.keyfile)
end
local key, kerr = shm.ftok(opts.keyfile, opts.proj)
if not key then cli.die(kerr) end
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
    cli.die(string.format("segment id %d with key 0x%08x is in use by a live writer " ..
                          "(pid %d, %d attached); not replacing it", e.shmid, key & 0xffffffff,
                          e.cpid, e.nattch))
  end
  if e then
    io.stderr:write(string.format("warning: removing stale segment id %d with key 0x%08x " ..
                                  "(creator pid %d %s, %d attached)\n", e.shmid, key & 0xffffffff,
                                  e.cpid, alive(e.cpid) and "alive" or "gone", e.nattch))
    local old, oerr = shm.sysv_attach(e.shmid, {readonly = true})
    if not old then cli.die(oerr) end
    local ok, rerr = old:remove()
    old:detach()
    if not ok then cli.die(rerr) end
  end
  seg, err, errno = create()
end
if not seg then cli.die(err) end
print(string.format("Writer: Shared memory segment created with ID: %d", seg.id))

print("Writer: Shared memory attached at address: " .. S.address(seg.id))

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
    cli.die(string.format("the message (%d bytes) does not fit in %d bytes with its NUL",
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
if not ok then cli.die(rerr) end
print("Writer: Shared memory segment marked for removal.")
