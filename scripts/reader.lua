-- Day56 reader (the lab): connects to the writer's control socket, receives its own eventfd, prints the shared data on every wake-up
--[[
The lab's reader: connect to the writer's control socket, receive an eventfd by SCM_RIGHTS,
open the segment by name (read-write, because locking the mutex in it writes to it), then on
every wake-up print

    [INFO] shm_data:
    counter=N
    message=TEXT

read under the lock. When the writer has set activation to false it prints
"[INFO] writer shut down" and exits 0; when the connection ends without that, the writer died:
a message on stderr and exit 1. The protocol is described at the top of scripts/writer.lua.
]]
local shm = require "shmhost"
local D = require "day56"
local cli = require "cli"

local usage = [[
usage: shmhost reader [options]
  --name /SEG        the segment (default /day56_shm)
  --socket PATH      the writer's control socket (default /tmp/day56_shm_ctrl.sock)
  --abstract NAME    an abstract control socket instead of a path
  --seqpacket        SOCK_SEQPACKET instead of SOCK_STREAM
  --wait S           wait up to S seconds for the writer to appear (default 5)]]

local o = D.options("reader", usage)

-- connect{wait=S} retries while the path is missing or nobody listens yet.
local conn, err, errno = shm.unix.connect(D.address(o, {wait = o.wait}))
if not conn and errno == shm.errno.EPROTOTYPE then
  cli.die(("the writer at %s uses the other socket type (%s); give --seqpacket to both or neither")
      :format(o.sockname, err))
end
if not conn then cli.die(("no writer at %s after %g s: %s"):format(o.sockname, o.wait, err)) end
print("[INFO] connected to writer")

-- A writer sends its hello as soon as it accepts; something else listening there may never
-- send anything, so the hello has a deadline.
local HELLO_WAIT = 5
local hello_done = false
shm.spawn(function()
  shm.sleep(HELLO_WAIT)
  if not hello_done then
    cli.die(("nothing from %s within %d s of connecting (is a Day56 writer listening there?)")
        :format(o.sockname, HELLO_WAIT))
  end
end)
local hello, objs = conn:recv()
hello_done = true
if not hello and objs == "closed" then
  cli.die("the writer closed the connection before sending an eventfd")
elseif not hello then
  cli.die("receiving the eventfd from " .. o.sockname .. ": " .. tostring(objs))
end
local ev
for _, obj in ipairs(objs) do
  if not ev and getmetatable(obj).__name == "shmhost.eventfd" then ev = obj else obj:close() end
end
if not ev then cli.die("the writer's first message carried no eventfd") end
-- The hello names the writer's segment; watching another one would show the wrong data. A
-- peer that sends other bytes (the lab's own writer) is accepted.
local served = hello:match("^" .. D.HELLO .. "([^\n]*)")
if served and served ~= o.name then
  cli.die(("the writer serves segment %s, not %s (use --name %s)"):format(served, o.name, served))
end
print("[INFO] received eventfd")

local seg, serr = shm.open(o.name)
if not seg then cli.die(serr) end
if seg:size() < D.Data.size then
  cli.die(("segment %s has %d bytes, less than struct shm_data (%d)")
      :format(o.name, seg:size(), D.Data.size))
end
local d = D.Data:view(seg)
local lock = d.lock

-- The data under the lock: activation, counter, message. A lock that does not come in 5 s (a
-- non-robust mutex whose holder died) or a segment truncated under us ends the reader with a
-- message instead of a hang or a crash.
local function snapshot()
  local ok, got, why = pcall(lock.lock, lock, 5)
  if ok and not got then cli.die("the lock of " .. o.name .. " was not released in 5 s (" .. tostring(why) .. ")") end
  if not ok then cli.die("cannot lock " .. o.name .. ": " .. tostring(got)) end
  if why == "owner-died" then
    cli.say("warning: the holder of the lock died; reading anyway")
  end
  local rok, act, counter, message = pcall(function() return d.activation, d.counter, d.message end)
  pcall(lock.unlock, lock)
  if not rok then cli.die("cannot read " .. o.name .. ": " .. tostring(act)) end
  return act, counter, message
end

local function shut_down()
  print("[INFO] writer shut down")
  shm.exit(0)
end

print("[INFO] epoll wait start")

ev:on(function(count, everr)
  if count == nil then cli.die("eventfd: " .. tostring(everr)) end
  local act, counter, message = snapshot()
  if not act then return shut_down() end
  print("[INFO] shm_data:")
  print("counter=" .. counter)
  print("message=" .. message)
end)

-- The writer sends nothing after the hello; the end of the connection is its end. A writer
-- that shut down set activation to false before its connections closed; one that died did not.
conn:on_recv(function(bytes, extra)
  if bytes ~= nil then
    for _, obj in ipairs(extra) do obj:close() end
    return
  end
  if not snapshot() then return shut_down() end
  cli.die("the writer died (control connection closed without a shutdown)")
end)
