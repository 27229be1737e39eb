-- Sequence number, user side (POSIX course example): takes the semaphore, shows the sequence number and optionally adds a run-length to it, slowly
local shm = require "shmhost"
local cli = require "cli"
local SQ = require "seqnum"

local usage = [[
usage: shmhost seqnum_get [--name /NAME | /NAME] [--sleep S] [--wait S] [RUN-LENGTH]
  Opens the object made by `shmhost seqnum_init` (default /pshm_seqnum), takes its semaphore,
  prints the current sequence number and, with RUN-LENGTH (> 0), adds RUN-LENGTH to it after
  sleeping S seconds (default 3) so that another seqnum_get visibly waits; then releases the
  semaphore. A process that has to wait says so on stderr. --wait gives up after S seconds
  (default 60: a process killed while holding the semaphore never gives it back).]]

-- RUN-LENGTH is a positive C int.
local o = SQ.options{
  prog = "seqnum_get", usage = usage,
  defaults = {sleep = 3, wait = 60},
  {"--sleep", cli.seconds},
  {"--wait", cli.seconds},
  number = "run", check = cli.integer(1, (1 << 31) - 1), what = "RUN-LENGTH",
}
local Shmbuf = SQ.Shmbuf

local seg, msg = shm.open(o.name)
if not seg then cli.die(msg .. " (create it with `shmhost seqnum_init`)") end
if seg:size() < Shmbuf.size then
  cli.die(("%s is %d bytes, too small for a sequence number object (%d)"):format(o.name, seg:size(), Shmbuf.size))
end
local d = Shmbuf:view(seg)
local sem = d.sem

-- Reserve the semaphore before touching the number. Try first, so that a process that has to
-- wait can say so before it does.
local t0 = shm.now()
if not sem:trywait() then
  cli.say(("waiting for %s (another process holds its semaphore)"):format(o.name))
  local ok, why = sem:wait(o.wait)
  if not ok then
    cli.die(why == "timeout"
        and ("gave up after %g s waiting for %s (a holder may have died; run seqnum_init again)"):format(o.wait, o.name)
        or why)
  end
  cli.say(("got %s after %.1f s"):format(o.name, shm.now() - t0))
end

print(("Current value of sequence number: %d"):format(d.seqnum))
if o.run then
  -- The slow update: whoever comes next waits on the semaphore meanwhile.
  if o.sleep > 0 then shm.sleep(o.sleep) end
  local v = d.seqnum + o.run
  if v >= 2^31 then
    sem:post()
    cli.die("the sequence number would pass the largest C int")
  end
  d.seqnum = v
  print("Updated sequence number")
end
assert(sem:post())
seg:close()
