-- Exercise (chapter 77): two-way ping-pong in one System V segment, first timed with a sleep (count the misses), then with two semaphores (none)
--
-- usage: shmhost exercises/sysv_pingpong [ROUNDS] [SLEEP-MS]
--
-- The chapter's second exercise: the writer puts "ping" in the segment and waits, the reader
-- overwrites it with "pong", the writer checks. "How do you know when the reader has written
-- its response?" With a sleep you guess: the reader needs a varying time to answer (here
-- 0 to 2 x SLEEP-MS of work), so after its sleep the writer often finds its own ping still
-- there, and a late pong can even overwrite the next ping, which is then never answered.
-- With two semaphores in the segment (ping: "there is a ping", pong: "there is a pong") each
-- side waits exactly as long as the other needs, and no round is missed.
local shm = require "shmhost"
local E = require "exercise"

local rounds = math.tointeger(tonumber(arg[1] or "100"))
local sleep_ms = tonumber(arg[2] or "5")
if not rounds or rounds < 1 or not sleep_ms or sleep_ms <= 0 then
  io.stderr:write("usage: shmhost exercises/sysv_pingpong [ROUNDS>=1] [SLEEP-MS>0]\n")
  os.exit(2)
end

local Box = shm.layout{ {"ping", "sem"}, {"pong", "sem"}, {"msg", "char[32]"} }

-- The other side: attaches the segment by id and answers every ping it sees with a pong,
-- after some work of random length.
local PONGER = [[
local shm = require "shmhost"
local id, mode, d = tonumber(arg[1]), arg[2], tonumber(arg[3]) / 1000
local Box = shm.layout{ {"ping", "sem"}, {"pong", "sem"}, {"msg", "char[32]"} }
local seg = assert(shm.sysv_attach(id))
local b = Box:view(seg)
local function work() shm.sleep(math.random() * 2 * d) end
local answered = 0
if mode == "sleep" then
  -- Poll the message; answer each new ping once.
  local last
  while b.msg ~= "quit" do
    local k = b.msg:match("^ping (%d+)$")
    if k and k ~= last then
      last = k
      work()
      b.msg = "pong " .. k
      answered = answered + 1
    end
    shm.sleep(d / 4)
  end
else
  while true do
    assert(b.ping:wait(10), "no ping for 10 s")
    local k = b.msg:match("^ping (%d+)$")
    if not k then break end -- "quit"
    work()
    b.msg = "pong " .. k
    answered = answered + 1
    b.pong:post()
  end
end
print("answered " .. answered)
seg:detach()
]]

E.run(function()
  local seg <close> = assert(shm.sysv(shm.IPC_PRIVATE, {create = true, size = Box.size}))
  local b = Box:view(seg)
  local d = sleep_ms / 1000
  print(("%d rounds; the ponger works 0 to %g ms before it answers"):format(rounds, 2 * sleep_ms))

  -- 1. Synchronised by a sleep: write the ping, sleep, look for the pong.
  b.msg = ""
  local p = E.shmhost{"-e", PONGER, tostring(seg.id), "sleep", tostring(sleep_ms), timeout = 60}
  shm.sleep(0.2) -- let it attach and start polling
  local ok, early, clobbered = 0, 0, 0
  for i = 1, rounds do
    b.msg = "ping " .. i
    shm.sleep(d)
    local got = b.msg
    if got == "pong " .. i then ok = ok + 1
    elseif got == "ping " .. i then early = early + 1    -- looked before the answer came
    else clobbered = clobbered + 1 end                   -- a late pong of an earlier round
  end
  shm.sleep(2 * d)
  b.msg = "quit"
  local pr = p:wait()
  E.check(pr.code == 0, "the sleeping ponger ended cleanly (" .. pr:status() .. ")")
  local missed = rounds - ok
  print(("\n1. with a %g ms sleep: %d of %d pongs seen, %d missed (%d still the ping, %d a stale pong)")
        :format(sleep_ms, ok, rounds, missed, early, clobbered))
  print("   the ponger " .. (pr.stdout:match("answered %d+") or "?") ..
        " pings: a ping overwritten before it looked was never answered at all")
  E.check(missed > 0, "the sleep lost rounds (it guesses how long the other side needs)")

  -- 2. Synchronised by two semaphores in the segment: ping = 0, pong = 0.
  assert(b.ping:init(0))
  assert(b.pong:init(0))
  b.msg = ""
  p = E.shmhost{"-e", PONGER, tostring(seg.id), "sem", tostring(sleep_ms), timeout = 60}
  local good, t0 = 0, shm.now()
  for i = 1, rounds do
    b.msg = "ping " .. i
    b.ping:post()
    local waited, why = b.pong:wait(10)
    if not waited then error("no pong for round " .. i .. ": " .. tostring(why)) end
    if b.msg == "pong " .. i then good = good + 1 end
  end
  local secs = shm.now() - t0
  b.msg = "quit"
  b.ping:post()
  pr = p:wait()
  E.check(pr.code == 0, "the semaphore ponger ended cleanly (" .. pr:status() .. ")")
  print(("\n2. with two semaphores: %d of %d pongs seen, %d missed; %.1f ms a round")
        :format(good, rounds, rounds - good, 1000 * secs / rounds))
  E.check(good == rounds, "every round has its pong with semaphores")
  return ("the sleep missed %d of %d rounds, the semaphores none"):format(missed, rounds)
end)
