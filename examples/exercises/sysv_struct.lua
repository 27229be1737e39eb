-- Exercise (chapter 77): pass struct SensorData through a System V segment both ways between this script and the chapter's writer and reader, compared field by field
--
-- usage: shmhost exercises/sysv_struct
--
-- The chapter's first exercise exchanges a C struct instead of a string:
--     struct SensorData { int sensor_id; double value; char status[16]; };
-- shm.layout lays it out as the C compiler does (4 bytes of padding after sensor_id, so that
-- the double is 8-byte aligned), so a script and a C program agree on every byte. This
-- exercise writes a SensorData with a layout and has `sysv_reader --struct` (another process)
-- print it; then `sysv_writer --struct` writes one and this script reads it back, field by
-- field and as raw bytes decoded at the C offsets.
local shm = require "shmhost"
local E = require "exercise"

local SensorData = shm.layout{ {"sensor_id", "int"}, {"value", "double"}, {"status", "char[16]"} }

E.run(function()
  print("The struct, as shm.layout lays it out (the C declaration it matches):")
  io.write(SensorData:cdecl("SensorData"))
  print(("sizeof = %d; sensor_id at %d, value at %d, status at %d"):format(SensorData.size,
        SensorData:offset("sensor_id"), SensorData:offset("value"), SensorData:offset("status")))
  E.check(SensorData:offset("value") % 8 == 0, "the double is 8-byte aligned")

  -- ftok needs an existing file; one of our own keeps this run apart from any other.
  local keyfile = E.path("sensor.key")
  E.write_file(keyfile, "")
  E.on_exit(function() os.remove(keyfile) end)
  local key = assert(shm.ftok(keyfile, "X"))

  -- 1. This script writes; the chapter's reader (another process) prints the fields.
  local seg <close> = assert(shm.sysv(key, {create = true, excl = true, size = SensorData.size}))
  local d = SensorData:view(seg)
  d.sensor_id, d.value, d.status = 101, 98.6, "OK"
  print(("\n1. wrote sensor_id=%d value=%.14g status=%s into segment id %d")
        :format(d.sensor_id, d.value, d.status, seg.id))
  local r = E.run_shmhost{"sysv_reader", "--keyfile", keyfile, "--struct", timeout = 15}
  local line = r.stdout:match("(sensor_id=[^\n]*)")
  print("   sysv_reader --struct printed: " .. tostring(line))
  if not E.check(r.code == 0 and line == "sensor_id=101 value=98.6 status=OK",
                 "sysv_reader read back what was written (" .. r:status() .. ")") then E.show(r) end
  seg:close() -- IPC_RMID: created here

  -- 2. The chapter's writer writes; this script attaches like its reader and compares.
  local want = {sensor_id = -4242, value = 1.0 / 3.0, status = "CALIBRATING"}
  local w = E.shmhost{"sysv_writer", "--keyfile", keyfile, "--struct", "--wait", "20",
                      "--sensor-id", tostring(want.sensor_id), "--value", ("%.17g"):format(want.value),
                      "--status", want.status, timeout = 30}
  E.on_exit(function()
    -- A writer that failed half-way may have left its segment: remove it.
    local left = shm.sysv(key)
    if left then left:remove(); left:detach() end
  end)
  assert(w:wait_for("Waiting for reader", 15), "sysv_writer did not get ready: " .. w:stderr_text())
  local ws = assert(shm.sysv(key, {readonly = true}))
  local v = SensorData:view(ws)
  print(("\n2. sysv_writer --struct wrote segment id %d; reading it with the layout:"):format(ws.id))
  for _, f in ipairs{"sensor_id", "value", "status"} do
    local got = v[f]
    print(("   %-9s = %-20s %s"):format(f, type(got) == "number" and ("%.17g"):format(got) or got,
                                     got == want[f] and "(as written)" or "(DIFFERENT)"))
    E.check(got == want[f], f .. " read back as written")
  end
  -- The same bytes decoded by hand at the C offsets: int, 4 bytes of padding, double, char[16].
  local raw = ws:read(0, SensorData.size)
  local id, val, status = string.unpack("=i4 xxxx d c16", raw)
  status = status:match("^[^%z]*")
  print(("   raw bytes at offsets 0/8/16: %d %.17g %s"):format(id, val, status))
  E.check(id == want.sensor_id and val == want.value and status == want.status,
          "the raw bytes hold the fields at the C offsets")
  ws:detach() -- the writer sees a reader that attached and detached, and removes the segment
  local wr = w:wait()
  E.check(wr.code == 0, "sysv_writer ended cleanly (" .. wr:status() .. ")")
  E.check(shm.sysv(key) == nil, "the writer removed its segment")
  return "SensorData crossed a System V segment both ways, byte for byte"
end)
