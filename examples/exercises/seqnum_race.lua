-- Exercise (POSIX course): the sequence number updated by several processes at once, with its semaphore (nothing lost) and without it (increments lost, counted)
--
-- usage: shmhost exercises/seqnum_race [PROCESSES] [RUN-LENGTH]
--
-- The course's example keeps `struct shmbuf { sem_t sem; int seqnum; }` in a POSIX object:
-- seqnum_get takes the semaphore, reads the number, sleeps (a slow update) and writes back the
-- number plus its run-length. Here PROCESSES copies of it run at the same time:
--   1. the bundled seqnum_init and seqnum_get: each waits its turn on the semaphore (it says
--      so on stderr), and the number ends at PROCESSES x RUN-LENGTH;
--   2. the same update without the semaphore: every process reads the number before any has
--      written it back, so each overwrites the others' work and all but one run are lost.
local shm = require "shmhost"
local E = require "exercise"

local procs = math.tointeger(tonumber(arg[1] or "4"))
local run = math.tointeger(tonumber(arg[2] or "5"))
if not procs or procs < 2 or procs > 64 or not run or run < 1 or run > 1000000 then
  io.stderr:write("usage: shmhost exercises/seqnum_race [PROCESSES 2..64] [RUN-LENGTH 1..1000000]\n")
  os.exit(2)
end

-- The course's struct, byte for byte.
local Shmbuf = shm.layout{ {"sem", "sem"}, {"seqnum", "int"} }

-- seqnum_get without its semaphore. All copies start together when the word at offset 0 of
-- the object named by arg[2] becomes 1, so that the race does not depend on how fast
-- processes start.
local UNLOCKED = [[
local shm = require "shmhost"
local name, go, run = arg[1], arg[2], tonumber(arg[3])
local Shmbuf = shm.layout{ {"sem", "sem"}, {"seqnum", "int"} }
local d = Shmbuf:view(assert(shm.open(name)))
local start = assert(shm.open(go))
while start:load("i32", 0) == 0 do shm.sleep(0.001) end
local v = d.seqnum
print("Current value of sequence number: " .. v)
shm.sleep(0.3) -- the slow update, as in the course
d.seqnum = v + run
print("Updated sequence number")
]]

E.run(function()
  local name = E.name("seqnum")
  local want = procs * run
  print(("%d processes each add %d to the sequence number: %d expected"):format(procs, run, want))

  -- 1. With the semaphore: the bundled scenarios.
  local init = E.run_shmhost{"seqnum_init", name, "0", timeout = 15}
  assert(init.code == 0, "seqnum_init failed: " .. init.stderr)
  -- seqnum_init keeps its object for seqnum_get: remove it whatever happens.
  E.on_exit(function()
    local s = shm.open(name)
    if s then s:unlink(); s:close() end
  end)
  local t0 = shm.now()
  local kids = {}
  for i = 1, procs do
    kids[i] = E.shmhost{"seqnum_get", name, "--sleep", "0.3", "--wait", "30", tostring(run),
                        timeout = 60}
  end
  local waited = 0
  for _, k in ipairs(kids) do
    k:wait()
    E.check(k.code == 0, "seqnum_get ended cleanly (" .. k:status() .. ")")
    if k.stderr:find("waiting for", 1, true) then waited = waited + 1 end
  end
  local final = E.run_shmhost{"seqnum_get", name, timeout = 15}
  local with = tonumber(final.stdout:match("sequence number: (%-?%d+)"))
  print(("\n1. with the semaphore: seqnum = %s after %.1f s, %d lost; %d of %d processes had to wait their turn")
        :format(tostring(with), shm.now() - t0, want - (with or 0), waited, procs))
  E.check(with == want, "no increment is lost with the semaphore")
  E.check(waited >= 1, "the semaphore made some process wait")

  -- 2. Without it: reset the number, start the processes together, count what is lost.
  local seg <close> = assert(shm.open(name))
  local d = Shmbuf:view(seg)
  d.seqnum = 0
  local go <close> = assert(shm.open(E.name("seqnum_go"), {create = true, size = 4}))
  for i = 1, procs do
    kids[i] = E.shmhost{"-e", UNLOCKED, name, go.name, tostring(run), timeout = 60}
  end
  shm.sleep(0.3) -- every process is waiting for the start word
  go:store("i32", 0, 1)
  local seen = {}
  for _, k in ipairs(kids) do
    k:wait()
    E.check(k.code == 0, "unlocked updater ended cleanly (" .. k:status() .. ")")
    seen[#seen + 1] = k.stdout:match("sequence number: (%-?%d+)") or "?"
  end
  local without = d.seqnum
  print(("\n2. without it: each process read %s; seqnum = %d, %d of %d lost")
        :format(table.concat(seen, ", "), without, want - without, want))
  E.check(without < want, "without the semaphore increments are lost")
  return ("with the semaphore 0 increments lost, without it %d of %d"):format(want - without, want)
end)
