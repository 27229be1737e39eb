-- Exercise (chapter 77): IPC_RMID right after creating and attaching, so a crash of every process still leaves nothing behind
--
-- usage: shmhost exercises/sysv_rmid_early
--
-- The chapter's robust pattern: the creator marks its segment for removal (IPC_RMID) at once.
-- The kernel then destroys it when the last process detaches, and process exit detaches,
-- whatever kills the process. The price: the key is freed at once, so later processes cannot
-- find the segment by key; they need its id (Linux still lets shmat attach a segment marked
-- for destruction) or an inherited attachment.
-- Here a creator process makes a segment, attaches, marks it removed and hands the id to this
-- script, which attaches too; the creator is killed with SIGKILL (no cleanup runs in it), the
-- data is still there, and when this script detaches the segment disappears. Compare
-- exercises/sysv_self_healing, where a killed writer that had not marked it leaves it behind.
local shm = require "shmhost"
local E = require "exercise"

-- /proc/sysvipc/shm's line for a segment id (nil once the segment is gone).
local function entry(id)
  local f = io.open("/proc/sysvipc/shm")
  if not f then return nil end
  local cols = {}
  for c in f:read("l"):gmatch("%S+") do cols[#cols + 1] = c end
  for line in f:lines() do
    local t, j = {}, 0
    for v in line:gmatch("%S+") do j = j + 1; t[cols[j]] = math.tointeger(tonumber(v)) end
    if t.shmid == id then f:close(); return t end
  end
  f:close()
end

local CREATOR = [[
local shm = require "shmhost"
local seg = assert(shm.sysv(tonumber(arg[1]), {create = true, excl = true, size = 4096}))
seg:write(0, "data from the creator, pid " .. shm.pid() .. "\0")
assert(seg:remove()) -- IPC_RMID now: destroyed at the last detach, whoever detaches last
print("id " .. seg.id)
shm.sleep(60) -- killed here
]]

E.run(function()
  local keyfile = E.path("early.key")
  E.write_file(keyfile, "")
  E.on_exit(function() os.remove(keyfile) end)
  local key = assert(shm.ftok(keyfile, "E"))

  local c = E.shmhost{"-e", CREATOR, tostring(key), timeout = 30}
  assert(c:wait_for("\n", 15), "the creator did not start: " .. c:stderr_text())
  local id = tonumber(c:stdout_text():match("id (%d+)"))
  local byid <close> = assert(shm.sysv_attach(id))
  local e = entry(id)
  print(("creator pid %d made segment id %d and marked it removed; /proc/sysvipc/shm: key %d, nattch %d")
        :format(c.pid, id, e.key, e.nattch))
  E.check(e.key == 0 and e.nattch == 2, "the key is freed at once, both processes are attached")
  local bykey, err = shm.sysv(key)
  print("shmget by key: " .. tostring(bykey and "found" or err))
  E.check(bykey == nil, "a marked segment cannot be found by its key")

  c:kill("sigkill")
  c:wait()
  e = entry(id)
  print(("creator killed (%s); the segment is still here with nattch %d: %s")
        :format(c:status(), e.nattch, byid:read(0, 64):match("^[^%z]*")))
  E.check(c.signal == 9 and e.nattch == 1, "the segment survives its creator while attached here")

  byid:detach()
  e = entry(id)
  print("this process detached: segment " .. (e and "still listed" or "gone"))
  E.check(e == nil, "the last detach destroyed it")
  return "a segment marked early vanishes with its last process, however it ends"
end)
