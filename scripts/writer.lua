-- Day56 writer (the lab): a POSIX segment with a mutex, one eventfd per reader over an AF_UNIX control socket, commands -w TEXT / -s / -t on stdin
--[[
The lab's writer: it creates the segment /day56_shm holding

    struct shm_data { pthread_mutex_t lock; bool activation; int counter; char message[256]; };

(counter 1, activation true, the mutex process-shared and robust), listens on the control
socket /tmp/day56_shm_ctrl.sock, and reads commands on stdin:

    -w TEXT   lock, counter + 1, message = TEXT (the rest of the line, up to 255 bytes),
              unlock, then notify every reader
    -s        print counter=N and message=TEXT
    -t        (or end of input) activation = false, notify, remove the segment and the
              socket, exit 0

The wire protocol between writer and reader (scripts/reader.lua and the C peers in
tests/interop/ speak it):
  1. The reader connects to the control socket (stream by default; --seqpacket on both sides
     for SOCK_SEQPACKET; --abstract NAME for an abstract socket, which has no file).
  2. The writer gives every reader its own eventfd: it sends one message whose data is the
     text "day56 SEGMENT-NAME\n" and whose SCM_RIGHTS ancillary data carries exactly one
     descriptor, that eventfd (ancillary data needs at least one byte of real data; the bytes
     also tell a reader started with another --name that it is watching the wrong segment).
     The segment's descriptor is not sent: as in the lab, the reader opens the segment by
     name (read-write: locking a mutex writes to it).
  3. After each update the writer writes 1 to every live reader's eventfd: the eventfd is a
     doorbell, not a message; the data is in the segment, read under the lock. Several
     updates may coalesce into one wake-up.
  4. Nothing else travels on the connection. It stays open while both live: the writer drops
     a reader whose connection ends, and a reader that sees the connection end without
     activation = false knows the writer died.
  5. Shutdown: activation = false under the lock, then a notify, then the segment and the
     socket are removed and the connections close.

A second writer while one is alive is refused, naming the live one's pid: it connects to the
control socket and reads the listener's credentials (SO_PEERCRED). A segment or socket left by
a writer that died (nobody listening) is replaced with a warning.
]]
local shm = require "shmhost"
local uv = require "luv"
local D = require "day56"
local cli = require "cli"

local usage = [[
usage: shmhost writer [options]    then commands on stdin: -w TEXT | -s | -t
  --name /SEG        the segment (default /day56_shm)
  --socket PATH      the control socket (default /tmp/day56_shm_ctrl.sock)
  --abstract NAME    an abstract control socket instead of a path
  --seqpacket        SOCK_SEQPACKET instead of SOCK_STREAM]]

local o = D.options("writer", usage)

-- Is a writer alive behind the control socket? A connect succeeds only if something
-- listens; SO_PEERCRED then gives the listener's pid (recorded by the kernel at listen()). A
-- listener of the other socket type refuses with EPROTOTYPE, so that type is tried too.
local function live_writer()
  local other = o.type == "stream" and "seqpacket" or "stream"
  for _, ty in ipairs{o.type, other} do
    local c, _, errno = shm.unix.connect(D.address(o, {type = ty}))
    if c then
      local peer = c:peer()
      c:close()
      return peer and peer.pid or -1
    end
    if errno ~= shm.errno.EPROTOTYPE then return nil end
  end
  return nil
end

local other = live_writer()
if other then
  cli.die(("another writer (pid %d) is serving %s; not starting"):format(other, o.sockname))
end

-- No writer is alive, so a segment of this name is what a dead one left behind.
local function remove_stale(name)
  local old = shm.open(name, {readonly = true})
  if old then
    local ok, err = old:unlink()
    old:close()
    if not ok then cli.die(err) end
  else
    -- An empty object cannot be mapped; on Linux shm_unlink removes /dev/shm/NAME.
    os.remove("/dev/shm" .. name)
  end
end

local create = {create = true, excl = true, size = D.Data.size}
local seg, err, errno = shm.open(o.name, create)
if not seg and errno == shm.errno.EEXIST then
  io.stderr:write(("warning: replacing stale segment %s (no live writer behind %s)\n")
                  :format(o.name, o.sockname))
  remove_stale(o.name)
  seg, err = shm.open(o.name, create)
end
if not seg then cli.die(err) end
print("[INFO] shm_open success")
local d = D.Data:view(seg)
print("[INFO] shared memory mapped")
assert(d.lock:init{robust = true})
d.activation = true
d.counter = 1
d.message = ""

-- listen replaces a stale socket file itself (with a warning) and refuses a live listener.
local srv, serr = shm.unix.listen(D.address(o))
if not srv then cli.die(serr) end
print("[INFO] socket created")
print("[INFO] socket listen success")

-- The live readers: connection -> its eventfd.
local readers = {}

local function drop(conn)
  local ev = readers[conn]
  readers[conn] = nil
  if ev then ev:close() end
  conn:close()
end

local accept
local function on_conn(conn, aerr)
  if not conn then
    -- A failing accept (out of descriptors...) stops on_accept; try again a little later
    -- rather than stop serving readers.
    cli.say("accept: " .. tostring(aerr) .. "; retrying")
    shm.sleep(0.1)
    return accept()
  end
  local ev, everr = shm.eventfd{}
  if not ev then
    cli.say(everr .. "; dropping a reader")
    return conn:close()
  end
  readers[conn] = ev
  if not conn:send(D.hello(o.name), {ev}) then return drop(conn) end -- gone already
  -- Readers send nothing; the end of the connection means the reader is gone.
  conn:on_recv(function(bytes, objs)
    if bytes == nil then return drop(conn) end
    for _, obj in ipairs(objs) do obj:close() end
  end)
end
function accept() srv:on_accept(on_conn) end
accept()

-- The lab's order: update and unlock first, then ring every reader's doorbell.
local function notify_all()
  for _, ev in pairs(readers) do ev:notify() end
end

-- `status` is the exit status when all went well (0 for -t, 128+N after signal N).
local function shutdown(status)
  -- Even when the segment is broken (truncated by a peer) the readers are woken and the
  -- names removed: a reader woken over a broken segment reports it and ends.
  local ok, err = pcall(d.lock.with, d.lock, function() d.activation = false end)
  if not ok then cli.say(err) end
  notify_all()
  srv:close() -- removes the socket path
  seg:close() -- created here, so this unlinks the segment; readers keep their mappings
  shm.exit(ok and (status or 0) or 1)
end

-- SIGINT, SIGTERM and SIGHUP shut down as -t does, so the readers are told (activation =
-- false) instead of seeing the writer die; the status still names the signal. Watching a
-- signal with luv tells the runtime the script ends itself on it.
for name, number in pairs({sigint = 2, sigterm = 15, sighup = 1}) do
  local watch = uv.new_signal()
  watch:start(name, function() shm.spawn(shutdown, 128 + number) end)
  watch:unref() -- it must not keep the writer alive on its own
end

local function command(line)
  if line == "-t" then return shutdown() end
  if line == "-s" then
    local counter, message = d.lock:with(function() return d.counter, d.message end)
    print("counter=" .. counter)
    print("message=" .. message)
  elseif line == "-w" or line:sub(1, 3) == "-w " then
    -- The message is a C string: it ends at a NUL byte, as it would for the C writer.
    local text = line:sub(4):match("^[^%z]*")
    if #text >= D.MSG_SIZE then
      cli.say(("message too long (%d bytes, at most %d); nothing changed")
              :format(#text, D.MSG_SIZE - 1))
      return
    end
    d.lock:with(function()
      d.counter = d.counter + 1
      d.message = text
    end)
    notify_all()
  elseif line ~= "" then
    io.stderr:write("usage: -w TEXT (write a message) | -s (show) | -t (terminate)\n")
  end
end

-- Lines come from the loop; this task runs them one at a time, in order, so a -w waiting for
-- the lock never lets a later command overtake it. End of input (false) is -t.
local queue, sleeper = {}, nil
local function push(v)
  queue[#queue + 1] = v
  if sleeper then
    local t = sleeper
    sleeper = nil
    shm.resume(t)
  end
end
D.read_lines(push, function() push(false) end)
while true do
  if #queue == 0 then
    sleeper = coroutine.running()
    shm.suspend()
  end
  local line = table.remove(queue, 1)
  if line == false then shutdown() end
  -- A segment truncated by a peer makes every access raise; end with a message, not a
  -- traceback, and still tell the readers and remove the names.
  local ok, err = pcall(command, line)
  if not ok then
    cli.say(err)
    shutdown()
  end
end
