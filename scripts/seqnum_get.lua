-- Sequence number, user side (POSIX course example): takes the semaphore, shows the sequence number and optionally adds a run-length to it, slowly
local shm = require "shmhost"

local prog = "seqnum_get"
local usage = [[
usage: shmhost seqnum_get [--name /NAME | /NAME] [--sleep S] [--wait S] [RUN-LENGTH]
  Opens the object made by `shmhost seqnum_init` (default /pshm_seqnum), takes its semaphore,
  prints the current sequence number and, with RUN-LENGTH (> 0), adds RUN-LENGTH to it after
  sleeping S seconds (default 3) so that another seqnum_get visibly waits; then releases the
  semaphore. A process that has to wait says so on stderr. --wait gives up after S seconds
  (default 60: a process killed while holding the semaphore never gives it back).]]

-- The layout both scripts share; it is the course's struct byte for byte.
local Shmbuf = shm.layout{{"sem", "sem"}, {"seqnum", "int"}}

local function die(msg, code)
  io.stderr:write(prog, ": ", msg, "\n")
  os.exit(code or 1)
end

local function usage_error(msg)
  if msg then io.stderr:write(prog, ": ", msg, "\n") end
  io.stderr:write(usage, "\n")
  os.exit(2)
end

local function seconds(opt, v)
  local n = tonumber(v or "")
  if not n or n < 0 or n ~= n then usage_error(opt .. " needs a number of seconds") end
  return n
end

local o = {name = "/pshm_seqnum", sleep = 3, wait = 60}
local i = 1
while i <= #arg do
  local a = arg[i]
  if a == "-h" or a == "--help" then
    io.stderr:write(usage, "\n")
    os.exit(0)
  elseif a == "--name" then
    o.name = arg[i + 1] or usage_error("--name needs a value")
    i = i + 1
  elseif a == "--sleep" or a == "--wait" then
    o[a:sub(3)] = seconds(a, arg[i + 1])
    i = i + 1
  elseif a:sub(1, 1) == "/" then
    o.name = a
  elseif o.run == nil and a:match("^[-+]?%d+$") then
    o.run = math.tointeger(tonumber(a))
    if not o.run or o.run <= 0 or o.run >= 2^31 then usage_error("invalid run-length " .. a) end
  else
    usage_error("unexpected argument '" .. a .. "'")
  end
  i = i + 1
end

local seg, msg = shm.open(o.name)
if not seg then die(msg .. " (create it with `shmhost seqnum_init`)") end
if seg:size() < Shmbuf.size then
  die(("%s is %d bytes, too small for a sequence number object (%d)"):format(o.name, seg:size(), Shmbuf.size))
end
local d = Shmbuf:view(seg)
local sem = d.sem

-- Reserve the semaphore before touching the number. Try first, so that a process that has to
-- wait can say so before it does.
local t0 = shm.now()
if not sem:trywait() then
  io.stderr:write(("%s: waiting for %s (another process holds its semaphore)\n"):format(prog, o.name))
  local ok, why = sem:wait(o.wait)
  if not ok then
    die(why == "timeout"
        and ("gave up after %g s waiting for %s (a holder may have died; run seqnum_init again)"):format(o.wait, o.name)
        or why)
  end
  io.stderr:write(("%s: got %s after %.1f s\n"):format(prog, o.name, shm.now() - t0))
end

print(("Current value of sequence number: %d"):format(d.seqnum))
if o.run then
  -- The slow update: whoever comes next waits on the semaphore meanwhile.
  if o.sleep > 0 then shm.sleep(o.sleep) end
  local v = d.seqnum + o.run
  if v >= 2^31 then
    sem:post()
    die("the sequence number would pass the largest C int")
  end
  d.seqnum = v
  print("Updated sequence number")
end
assert(sem:post())
seg:close()
