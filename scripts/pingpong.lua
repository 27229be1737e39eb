-- Ping-pong between two processes (chapter 77's exercise): round trips over eventfd, semaphores, the ring or a spin word, with rate and latency percentiles
--
-- `shmhost pingpong` is the ping side. It starts the pong side itself (the same shmhost
-- binary, this same script, with `--role pong`) and hands it a memfd segment and, for --via
-- eventfd, two eventfds, in one message on an abstract AF_UNIX seqpacket socket
-- (SCM_RIGHTS), so nothing of the run has a name in /dev/shm or /tmp to be left behind. Each round trip writes a
-- message of --size bytes for the other side, wakes it, and waits for the echo, which must
-- come back byte for byte.
--
-- Either side ends the other within a second when it dies: ping learns it from the child's
-- exit (libuv reaps it), pong from its parent pid changing (a dead parent's children are
-- reparented), checked every 50 ms.
local shm = require "shmhost"
local uv = require "luv"
local cli = require "cli"

local usage = [[
usage: shmhost pingpong [--via eventfd|sem|ring|spin] [--count N] [--size BYTES]
                        [--warmup N] [--json]
  Starts a second process and bounces a message of BYTES bytes (default 64) between the two
  N times (default 10000) through a memfd segment they share. Each side wakes the other with
  what --via names (default eventfd):
    eventfd  one eventfd per direction
    sem      two process-shared semaphores in the segment
    ring     two shared-memory rings; the message travels in the ring
    spin     a sequence word each side polls (it backs off to 1 ms sleeps after 2 ms)
  Prints the round trips, the rate, and the median (p50), p99 and largest latency of one
  round trip, after --warmup round trips that are not measured (default 100).
  --json   print one JSON object instead: via, count, size, seconds, rate, p50_us, p99_us,
           max_us]]

local VIAS = {eventfd = true, sem = true, ring = true, spin = true}
local MAX_COUNT, MAX_SIZE = 100000000, 16 << 20

local function options(args)
  local o = cli.parse(args, {
    prog = "pingpong", usage = usage, unknown = "unknown argument '%s'",
    defaults = {via = "eventfd", count = 10000, size = 64, warmup = 100, json = false},
    {"--via", cli.choice{"eventfd", "sem", "ring", "spin"}},
    {"--count", cli.integer(1, MAX_COUNT)},
    {"--size", cli.integer(0, MAX_SIZE)},
    {"--warmup", cli.integer(0, MAX_COUNT)},
    {"--json"},
    -- How ping starts pong; not for people.
    {"--role", cli.string},
    {"--socket", cli.string},
  })
  if o.role and (o.role ~= "pong" or not o.socket) then cli.usage_error("--role pong needs --socket") end
  return o
end

-- ------------------------------------------------------------ the shared segment

-- Offsets in the segment. The two spin words and the two semaphores each get a cache line,
-- so the side that polls one does not slow down the side that writes the other.
local SEM_SIZE = shm.layout{{"s", "sem"}}.size
local function line(n) return (n + 63) & ~63 end

local function plan(size)
  local p = {word = {0, 64}, sem = {128, 128 + line(SEM_SIZE)}}
  local at = 128 + 2 * line(SEM_SIZE)
  p.slot = {at, at + line(size)}
  at = at + 2 * line(size)
  -- A round trip has one message in flight per direction: four fit in each ring.
  p.capacity = math.max(64, 4 * ((size + 8 + 7) & ~7))
  p.ring = {at, at + line(shm.ring.footprint(p.capacity))}
  p.total = p.ring[2] + line(shm.ring.footprint(p.capacity))
  return p
end

-- The two ends of one side. Direction 1 carries ping to pong, direction 2 the echo back;
-- `out` and `inn` are the directions this side writes and reads. Returns send(s), recv().
local function transport(via, seg, objs, size, p, out, inn)
  if via == "eventfd" then
    local ev_out, ev_in = objs[out], objs[inn]
    return function(s)
      if size > 0 then seg:write(p.slot[out], s) end
      ev_out:notify(1)
    end, function()
      local n, err = ev_in:wait()
      if not n then cli.die("eventfd wait: " .. tostring(err)) end
      return size > 0 and seg:read(p.slot[inn], size) or ""
    end
  elseif via == "sem" then
    local s_out, s_in = shm.sem(seg, p.sem[out]), shm.sem(seg, p.sem[inn])
    return function(s)
      if size > 0 then seg:write(p.slot[out], s) end
      s_out:post()
    end, function()
      local ok, err = s_in:wait()
      if not ok then cli.die("sem wait: " .. tostring(err)) end
      return size > 0 and seg:read(p.slot[inn], size) or ""
    end
  elseif via == "ring" then
    local r_out, r_in = objs[out], objs[inn]
    return function(s)
      local ok, err = r_out:put(s)
      if not ok then cli.die("ring put: " .. tostring(err)) end
    end, function()
      local s, err = r_in:get()
      if not s then cli.die("ring get: " .. tostring(err)) end
      return s
    end
  end
  -- spin: the writer stores a sequence number after the message; the reader polls for it.
  -- Stores and loads are sequentially consistent, so the message is visible once the number
  -- is. Polling is bounded: after 2 ms without an answer, each check sleeps 1 ms, which also
  -- lets the loop run the watch on the peer.
  local w_out, w_in, seq_out, seq_in = p.word[out], p.word[inn], 0, 0
  local now, load = shm.now, seg.load
  return function(s)
    if size > 0 then seg:write(p.slot[out], s) end
    seq_out = (seq_out + 1) & 0xffffffff
    seg:store("u32", w_out, seq_out)
  end, function()
    seq_in = (seq_in + 1) & 0xffffffff
    local n, since = 0, nil
    while load(seg, "u32", w_in) ~= seq_in do
      n = n + 1
      if n & 1023 == 0 then
        local t = now()
        if not since then since = t
        elseif t - since > 0.002 then shm.sleep(0.001) end
      end
    end
    return size > 0 and seg:read(p.slot[inn], size) or ""
  end
end

-- ------------------------------------------------------------ pong

local function pong(o)
  local c, err = shm.unix.connect{abstract = o.socket, type = "seqpacket", wait = 5}
  if not c then cli.die("connect to the ping side: " .. tostring(err)) end
  local msg, objs = c:recv()
  c:close()
  local via, size, total, parent = (msg or ""):match("^(%a+) (%d+) (%d+) (%d+)$")
  size, total, parent = math.tointeger(size), math.tointeger(total), math.tointeger(parent)
  local seg = objs and objs[1]
  if not (via and VIAS[via] and size and total and parent and seg) then
    cli.die("bad set-up message from the ping side: " .. ("%q"):format(tostring(msg)))
  end
  local p = plan(size)
  if seg:size() < p.total then cli.die("segment too small for the plan") end
  local ends = {}
  if via == "eventfd" then ends = {objs[2], objs[3]}
  elseif via == "ring" then
    for d = 1, 2 do ends[d] = assert(shm.ring.attach(seg, p.ring[d])) end
  end
  -- The ping side's death: we are its child, so our parent pid changes when it dies.
  local watch = uv.new_timer()
  watch:start(50, 50, function()
    if uv.os_getppid() ~= parent then cli.die(("ping side (pid %d) died"):format(parent)) end
  end)
  watch:unref()
  local send, recv = transport(via, seg, ends, size, p, 2, 1)
  for _ = 1, total do send(recv()) end
  watch:close()
  for _, e in ipairs(ends) do e:close() end
  seg:close()
end

-- ------------------------------------------------------------ ping

local function percentile(sorted, q)
  local i = math.max(1, math.ceil(q * #sorted))
  return sorted[i]
end

local function ping(o)
  local p = plan(o.size)
  local seg = assert(shm.memfd("pingpong", {size = p.total}))
  local objs, ends = {seg}, {}
  if o.via == "eventfd" then
    ends = {assert(shm.eventfd()), assert(shm.eventfd())}
    objs[2], objs[3] = ends[1], ends[2]
  elseif o.via == "sem" then
    for d = 1, 2 do assert(shm.sem(seg, p.sem[d]):init(0)) end
  elseif o.via == "ring" then
    for d = 1, 2 do ends[d] = shm.ring.create(seg, p.ring[d], p.capacity) end
  end

  local name = ("shmhost_pingpong_%d"):format(shm.pid())
  local srv = assert(shm.unix.listen{abstract = name, type = "seqpacket"})
  local script = debug.getinfo(1, "S").source:gsub("^@", "")
  local finished, exited, waiter = false, nil, nil
  local child, pid
  child, pid = uv.spawn(uv.exepath(), {
    args = {script, "--role", "pong", "--socket", name}, stdio = {nil, 1, 2},
  }, function(code, sig)
    exited = {code = code, sig = sig}
    child:close()
    -- Pong ends by itself, with status 0, right after it has sent the last echo, which may
    -- be before ping has taken it; anything else before the end is a failure.
    if not finished and (code ~= 0 or sig ~= 0) then
      cli.die(("pong side (pid %d) %s"):format(pid, sig ~= 0 and ("died (signal %d)"):format(sig)
                                              or ("exited with status %d"):format(code)))
    end
    if waiter then
      local w = waiter
      waiter = nil
      shm.resume(w)
    end
  end)
  if not child then cli.die("spawn " .. uv.exepath() .. ": " .. tostring(pid)) end
  -- Our own failure takes the child with it rather than leaving it to notice.
  local function fail(msg)
    if not exited then uv.process_kill(child, "sigterm") end
    cli.die(msg)
  end

  local conn, err = srv:accept()
  if not conn then fail("accept: " .. tostring(err)) end
  srv:close()
  local total = o.warmup + o.count
  local ok, serr = conn:send(("%s %d %d %d"):format(o.via, o.size, total, shm.pid()), objs)
  if not ok then fail("send to the pong side: " .. tostring(serr)) end
  conn:close()

  local send, recv = transport(o.via, seg, ends, o.size, p, 1, 2)
  local filler = string.rep("p", o.size)
  local lat, now = {}, shm.now
  local t_start
  for i = 1, total do
    local msg = o.size >= 8 and string.pack("<i8", i) .. filler:sub(9)
                or string.pack("<i8", i):sub(1, o.size)
    if i == o.warmup + 1 then t_start = now() end
    local t0 = now()
    send(msg)
    local back = recv()
    local dt = now() - t0
    if back ~= msg then fail(("round trip %d: the echo differs from the message"):format(i)) end
    if i > o.warmup then lat[i - o.warmup] = dt end
  end
  local elapsed = now() - t_start
  finished = true

  -- The pong side ends by itself after the last echo: wait for it and require success.
  if not exited then
    local timer = uv.new_timer()
    timer:start(5000, 0, function()
      if waiter then
        local w = waiter
        waiter = nil
        shm.resume(w)
      end
    end)
    waiter = coroutine.running()
    shm.suspend()
    timer:close()
  end
  if not exited then fail(("pong side (pid %d) did not end after the last round trip"):format(pid)) end
  if exited.code ~= 0 or exited.sig ~= 0 then
    cli.die(("pong side (pid %d) ended with status %d, signal %d"):format(pid, exited.code, exited.sig))
  end
  for _, e in ipairs(ends) do e:close() end
  seg:close()

  table.sort(lat)
  local us = 1e6
  local r = {
    via = o.via, count = o.count, size = o.size, seconds = elapsed, rate = o.count / elapsed,
    p50_us = percentile(lat, 0.50) * us, p99_us = percentile(lat, 0.99) * us,
    max_us = lat[#lat] * us,
  }
  if o.json then
    print(('{"via":"%s","count":%d,"size":%d,"seconds":%.6f,"rate":%.1f,' ..
           '"p50_us":%.3f,"p99_us":%.3f,"max_us":%.3f}')
          :format(r.via, r.count, r.size, r.seconds, r.rate, r.p50_us, r.p99_us, r.max_us))
  else
    print(("pingpong via %s: %d round trips of %d bytes in %.3f s"):format(r.via, r.count,
          r.size, r.seconds))
    print(("rate: %.0f round trips/s"):format(r.rate))
    print(("latency: p50 %.1f us, p99 %.1f us, max %.1f us"):format(r.p50_us, r.p99_us,
          r.max_us))
  end
end

local o = options(arg)
if o.role then pong(o) else ping(o) end
