-- Exercise (System V pitfalls): IPC_CREAT without IPC_EXCL silently opens an existing segment of another size; IPC_EXCL tells; IPC_PRIVATE is always new; IPC_RMID while attached
--
-- usage: shmhost exercises/sysv_existing_key
--
-- The notes' user-record program calls shmget(key, sizeof(struct shared_user_record),
-- 0640 | IPC_CREAT), prints the values already there and writes its own. That call never
-- says whether it created the segment: when one exists under the key it returns that one,
-- whatever its size (as long as it is not smaller than asked) and whatever it holds. Here:
--   1. this process creates a 1024-byte segment under a key and writes a record;
--   2. another process runs the record program: it finds this record, not zeros, and its
--      "sizeof(record)" segment is 1024 bytes; this process sees what it wrote;
--   3. asking for more than exists: C's shmget fails with EINVAL; shm.sysv opens the
--      existing segment and seg:size() says it is smaller than asked (bounds checks keep
--      the script safe, but it must look); adding IPC_EXCL fails with EEXIST, which is how a
--      program tells "mine" from "someone else's";
--   4. IPC_PRIVATE makes a new segment every time;
--   5. IPC_RMID while another process is attached: the segment only gets marked for
--      destruction (the key is freed at once, so shmget by key no longer finds it), and the
--      attached process goes on reading and writing it until it detaches.
local shm = require "shmhost"
local E = require "exercise"

-- The notes' struct: { int user_id; char username[64]; }
local Record = shm.layout{ {"user_id", "int"}, {"username", "char[64]"} }

-- The record program: arg[1] the key, arg[2] the size to ask for, arg[3] "excl" or not.
local RECORD = [[
local shm = require "shmhost"
local Record = shm.layout{ {"user_id", "int"}, {"username", "char[64]"} }
local key, size, excl = tonumber(arg[1]), tonumber(arg[2]), arg[3] == "excl"
local seg, err, errno = shm.sysv(key, {create = true, excl = excl, size = size, mode = "0640"})
if not seg then
  print(("shmget failed: %s (errno %d)"):format(err, errno))
  os.exit(0)
end
print(("got segment id %d, %s, %d bytes"):format(seg.id, seg.created and "created" or "already there", seg:size()))
if seg:size() < size then
  print(("asked for %d bytes, got %d: smaller than asked"):format(size, seg:size()))
  seg:detach()
  os.exit(0)
end
local r = Record:view(seg)
print(("existing values: user_id = %d, username = %s"):format(r.user_id, r.username))
r.user_id, r.username = 42, "bob"
print(("updated values: user_id = %d, username = %s"):format(r.user_id, r.username))
seg:detach()
]]

-- Attaches by id, and once the segment is marked removed, shows it still works.
local ATTACHED = [[
local shm = require "shmhost"
local seg = assert(shm.sysv_attach(tonumber(arg[1])))
print("attached")
local deadline = shm.now() + 15
while not assert(seg:stat()).removed do
  if shm.now() > deadline then error("never marked removed") end
  shm.sleep(0.005)
end
seg:write(100, "written after IPC_RMID\0")
local st = seg:stat()
print(("after IPC_RMID: removed=%s nattch=%d key=%d, read back: %s"):format(tostring(st.removed),
      st.nattch, st.key, seg:read(100, 22)))
seg:detach()
]]

local function lines_of(c, prefix)
  for line in c.stdout:gmatch("[^\n]+") do print(prefix .. line) end
end

E.run(function()
  local keyfile = E.path("record.key")
  E.write_file(keyfile, "")
  E.on_exit(function() os.remove(keyfile) end)
  local key = assert(shm.ftok(keyfile, "R"))
  E.on_exit(function()
    local left = shm.sysv(key, {readonly = true})
    if left then left:remove(); left:detach() end
  end)

  -- 1. A segment under the key, bigger than a record, with a record in it.
  local seg <close> = assert(shm.sysv(key, {create = true, excl = true, size = 1024, mode = "0640"}))
  local r = Record:view(seg)
  r.user_id, r.username = 7, "alice"
  print(("1. this process made segment id %d (1024 bytes) and wrote user_id = 7, username = alice"):format(seg.id))

  -- 2. The record program with IPC_CREAT and sizeof(record).
  print(("\n2. the record program: shmget(key, %d, 0640 | IPC_CREAT)"):format(Record.size))
  local c = E.run_shmhost{"-e", RECORD, tostring(key), tostring(Record.size), timeout = 15}
  lines_of(c, "   ")
  E.check(c.stdout:find("got segment id " .. seg.id .. ", already there, 1024 bytes", 1, true),
          "IPC_CREAT returned the existing 1024-byte segment")
  E.check(c.stdout:find("existing values: user_id = 7, username = alice", 1, true), "it saw this process's record")
  print(("   here now: user_id = %d, username = %s"):format(r.user_id, r.username))
  E.check(r.user_id == 42 and r.username == "bob", "its update reached this process")

  -- 3. More than exists; then IPC_EXCL.
  print("\n3. asking for 4096 bytes, then adding IPC_EXCL:")
  c = E.run_shmhost{"-e", RECORD, tostring(key), "4096", timeout = 15}
  lines_of(c, "   ")
  E.check(c.stdout:find("Invalid argument (errno " .. shm.errno.EINVAL .. ")", 1, true)
          or c.stdout:find("asked for 4096 bytes, got 1024: smaller than asked", 1, true),
          "a bigger size is refused or shows as smaller than asked")
  c = E.run_shmhost{"-e", RECORD, tostring(key), tostring(Record.size), "excl", timeout = 15}
  lines_of(c, "   ")
  E.check(c.stdout:find("File exists (errno " .. shm.errno.EEXIST .. ")", 1, true), "IPC_EXCL is EEXIST")

  -- 4. IPC_PRIVATE: never shared by key, always new.
  local p1 <close> = assert(shm.sysv(shm.IPC_PRIVATE, {create = true, size = Record.size}))
  local p2 <close> = assert(shm.sysv(shm.IPC_PRIVATE, {create = true, size = Record.size}))
  print(("\n4. IPC_PRIVATE twice: ids %d and %d"):format(p1.id, p2.id))
  E.check(p1.id ~= p2.id and p1.id ~= seg.id, "IPC_PRIVATE makes a new segment each time")

  -- 5. IPC_RMID while another process is attached.
  print("\n5. IPC_RMID while another process is attached:")
  local a = E.shmhost{"-e", ATTACHED, tostring(seg.id), timeout = 30}
  assert(a:wait_for("attached", 15), "the attached process did not start: " .. a:stderr_text())
  assert(seg:remove())
  local again, err = shm.sysv(key)
  print("   shmget(key) right after: " .. tostring(again and "found" or err))
  E.check(again == nil and err:find("No such file or directory", 1, true), "the key is free at once")
  a:wait()
  lines_of(a, "   other process: ")
  E.check(a.code == 0 and a.stdout:find("removed=true nattch=2 key=0, read back: written after IPC_RMID", 1, true),
          "the attached process kept using the marked segment (" .. a:status() .. ")")
  E.check(seg:read(100, 22) == "written after IPC_RMID", "this process sees that write too")
  print("   this process reads: " .. seg:read(100, 22))
  return "IPC_CREAT alone hides whose segment it is; IPC_EXCL tells; IPC_RMID waits for the last detach"
end)
