-- System V reader (chapter 77): ftok key, shmget the writer's segment, attach read-only, print the message or --struct SensorData, detach
local shm = require "shmhost"
local cli = require "cli"
local S = require "sysv"

local usage = [[
usage: shmhost sysv_reader [options]
  --keyfile PATH   file for ftok (default /tmp/shm_key_file)
  --proj C         ftok project id, one character or 1-255 (default X)
  --struct         read struct SensorData { int sensor_id; double value; char status[16]; }]]

local opts = S.options("sysv_reader", usage, {})

local key, kerr = shm.ftok(opts.keyfile, opts.proj)
if not key then cli.die(kerr) end
print(string.format("Reader: Generated key: %d", key))

-- No IPC_CREAT: a reader must not make the segment it expects the writer to have made.
local seg, err = shm.sysv(key, {readonly = true})
if not seg then
  cli.die(err .. "\nReader: Is the writer process running?")
end
print(string.format("Reader: Located shared memory segment with ID: %d", seg.id))

print("Reader: Shared memory attached at address: " .. S.address(seg.id))

print("Reader: Reading from shared memory...")
if opts.struct then
  if seg:size() < S.SensorData.size then
    seg:detach()
    cli.die(string.format("the segment has %d bytes, struct SensorData needs %d",
                    seg:size(), S.SensorData.size))
  end
  local d = S.SensorData:view(seg)
  print(string.format("sensor_id=%d value=%.14g status=%s", d.sensor_id, d.value, d.status))
else
  local bytes = seg:read(0, seg:size())
  local msg = bytes:match("^[^%z]*")
  print(string.format('Reader: Message received: "%s"', msg))
end

seg:detach()
print("Reader: Shared memory detached.")
