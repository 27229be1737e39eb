-- Throughput and latency of the shm ring, semaphores, eventfd, futex and spin words against pipes, sockets and a C baseline, as ratios from one run
--
-- usage: shmhost bench [--quick] [--json] [--only NAME,...] [--size BYTES] [--count N]
--                      [--rounds N] [--deadline S]
--
-- Every figure is measured in this run on this machine and shown as a ratio against a
-- baseline measured in the same run, so the table holds on a noisy shared machine where the
-- absolute numbers do not: throughput against memcpy bandwidth and against the C ring, latency
-- against one cache line handed between two cores and against a pipe round trip, and each Lua
-- transfer against the same transfer written in C (bench/baseline.c). docs/bench.md says how
-- to read it.
--
-- The process model. This script has three roles:
--   main    runs the C baseline, then one runner per Lua measurement, and prints the table;
--   runner  (--run MECH METRIC) measures one transfer: it starts the peer, hands it a memfd
--           segment and the descriptors over an abstract AF_UNIX socket (SCM_RIGHTS), and
--           prints one `result` or `skip` line in the baseline's own format;
--   peer    (--peer SOCKET) is the other end of that transfer.
-- Runners and the baseline run in process groups of their own under a deadline, and every
-- child watches its parent, so a hung or crashed transfer becomes an "unavailable" row, never
-- a hang; and nothing they create has a name (memfd, abstract socket, pipes), so nothing can
-- be left behind in /dev/shm, ipcs or /tmp.
local shm = require "shmhost"
local uv = require "luv"
local cli = require "cli"

local SCRIPT = debug.getinfo(1, "S").source:gsub("^@", "")
local pack, unpack = string.pack, string.unpack

local USAGE = [[
usage: shmhost bench [--quick] [--json] [--only NAME,...] [--size BYTES] [--count N]
                     [--rounds N] [--deadline S]
  Measures throughput (--count messages of --size bytes, default 4096) and latency (--count
  round trips of one byte) of each mechanism, in C and from Lua, and prints one table of
  ratios against baselines from the same run.
    --quick       small counts and two rounds: a few seconds in all
    --json        one JSON object instead of the table
    --only LIST   mechanisms to measure (ring,sem,eventfd,futex,spin,pipe,unix); the
                  baselines are always measured
    --count N     messages and round trips per transfer (default 20000, quick 1000)
    --rounds N    repetitions of each transfer, the fastest counts (default 3, quick 2)
    --deadline S  seconds one measurement may take before it is given up (default 60)]]

-- The rows, in table order; `why` says why a mechanism has no Lua row.
local MECHS = {{name = "ring"}, {name = "sem"}, {name = "eventfd"}, {name = "futex"},
  {name = "spin"}, {name = "pipe"}, {name = "unix"}}
local BY_NAME = {}
for _, m in ipairs(MECHS) do BY_NAME[m.name] = m end
local METRICS = {"throughput", "latency"}

-- ------------------------------------------------------------ options

-- --only's list: a set of mechanism names.
local function mechanisms(word, opt)
  local set = {}
  for name in word:gmatch("[^,]+") do
    if not BY_NAME[name] then
      return nil, ("%s: unknown name '%s' (names: ring, sem, eventfd, futex, spin, pipe, unix)")
                  :format(opt, name)
    end
    set[name] = true
  end
  if next(set) == nil then return nil, opt .. " needs at least one name" end
  return set
end

local function options(args)
  local o = cli.parse(args, {
    prog = "bench", usage = USAGE, unknown = "unknown argument '%s'",
    defaults = {size = 4096, json = false},
    {"--quick"},
    {"--json"},
    {"--size", cli.integer(1, 16 << 20)},
    {"--count", cli.integer(1, 100000000)},
    {"--rounds", cli.integer(1, 100)},
    {"--deadline", cli.integer(1, 3600)},
    {"--only", mechanisms},
    -- How the main role starts the others; not for people.
    {"--run", cli.string, n = 2, set = function(o, v) o.run = {mech = v[1], metric = v[2]} end},
    {"--peer", cli.string},
  })
  o.count = o.count or (o.quick and 1000 or 20000)
  o.rounds = o.rounds or (o.quick and 2 or 3)
  o.deadline = o.deadline or (o.quick and 20 or 60)
  return o
end

-- ------------------------------------------------------------ byte streams and luv handles

-- A task parked until a luv callback wakes it.
local function parking()
  local p = {}
  function p.wait() p.task = coroutine.running(); shm.suspend() end
  function p.wake()
    local t = p.task
    p.task = nil
    if t then shm.resume(t) end
  end
  return p
end

-- A byte stream read in exact amounts: `source()` returns the next non-empty chunk or raises.
local function reader(source)
  local r, left = {}, ""
  function r.take(n)
    while #left < n do left = left .. source() end
    local s = left:sub(1, n)
    left = left:sub(n + 1)
    return s
  end
  -- Consumes exactly `total` bytes, handing each piece and its offset in the stream to fn.
  function r.consume(total, fn)
    local got = 0
    while got < total do
      local s
      if #left > 0 then s, left = left, "" else s = source() end
      if got + #s > total then s, left = s:sub(1, total - got), s:sub(total - got + 1) end
      fn(s, got)
      got = got + #s
    end
  end
  return r
end

local function socket_source(c)
  return function()
    local s, err = c:recv(1 << 18)
    if not s then error("recv: " .. tostring(err), 0) end
    if s == "" then error("recv: the peer closed the connection", 0) end
    return s
  end
end

-- A luv pipe as a chunk source: chunks queue up in the read callback, a task takes them.
local function pipe_source(h)
  local chunks, first, last, park, failure = {}, 1, 0, parking(), nil
  h:read_start(function(err, data)
    if err then failure = "read: " .. err
    elseif data then
      last = last + 1
      chunks[last] = data
    else failure = "read: the peer closed the pipe" end
    park.wake()
  end)
  return function()
    while first > last do
      if failure then error(failure, 0) end
      park.wait()
    end
    local s = chunks[first]
    chunks[first] = nil
    first = first + 1
    return s
  end
end

-- A luv pipe as a writer. Writes that complete at once still call back only on the next loop
-- turn, so a sender that never yields would pile up requests (and the strings they hold):
-- past WINDOW outstanding writes, or WINDOW_BYTES, it waits for the callbacks to catch up.
local WINDOW, WINDOW_BYTES = 64, 4 << 20
local function pipe_writer(h)
  local pending, bytes, park, failure = 0, 0, parking(), nil
  local function done(err)
    pending = pending - 1
    if err and not failure then failure = "write: " .. err end
    if (pending <= WINDOW // 2 and bytes <= WINDOW_BYTES // 2) or failure then park.wake() end
  end
  local w = {}
  function w.write(s)
    if failure then error(failure, 0) end
    pending, bytes = pending + 1, bytes + #s
    local n = #s
    local ok, err = h:write(s, function(e)
      bytes = bytes - n
      done(e)
    end)
    if not ok then error("write: " .. tostring(err), 0) end
    while (pending > WINDOW or bytes > WINDOW_BYTES) and not failure do park.wait() end
  end
  function w.flush()
    while pending > 0 and not failure do park.wait() end
    if failure then error(failure, 0) end
  end
  return w
end

-- ------------------------------------------------------------ the shared segment

local function line(n) return (n + 63) & ~63 end

-- Where everything lives in the memfd segment of one transfer. The flags and semaphores each
-- get a cache line, so a side polling one does not slow the side writing the other.
local function plan(metric, size)
  local sem_size = shm.layout{{"s", "sem"}}.size
  local p = {flag = {0, 64}, sem = {128, 128 + line(sem_size)}}
  p.data = line(128 + 2 * line(sem_size))
  local at = line(p.data + size)
  if metric == "throughput" then
    -- A megabyte, or four messages when they are larger: enough to keep both sides busy.
    p.capacity = math.max(1 << 20, 4 * ((8 + size + 7) & ~7))
  else
    p.capacity = 4096
  end
  p.ring = {at, at + line(shm.ring.footprint(p.capacity))}
  p.total = p.ring[2] + line(shm.ring.footprint(p.capacity))
  return p
end

-- ------------------------------------------------------------ the transfers

-- Message i of a throughput run: its sequence number first, so the receiver can tell a lost,
-- repeated or torn message.
local function maker(size)
  local filler = size > 8 and string.rep("m", size - 8) or ""
  return function(i)
    if size >= 8 then return pack("<i8", i) .. filler end
    return pack("<i8", i):sub(1, size)
  end
end

local function check(s, size, i)
  if #s ~= size or (size >= 8 and unpack("<i8", s) ~= i) then
    error(("message %d arrived wrong (%d bytes)"):format(i, #s), 0)
  end
end

-- Checks the sequence numbers of the messages that start inside a piece of a byte stream.
local function check_stream(size)
  if size < 8 then return function() end end
  return function(s, off)
    local k = (off + size - 1) // size
    while k * size + 8 <= off + #s do
      if unpack("<i8", s, k * size - off + 1) ~= k then
        error(("message %d arrived wrong in the stream"):format(k), 0)
      end
      k = k + 1
    end
  end
end

-- Builds one side's send/receive for a transfer: returns run(n), a function that does one
-- whole throughput transfer (count messages; n is ignored) or n round trips, as side 1
-- (sender, ping) or 2 (receiver, pong).
local function transfer(x, side)
  local mech, metric, size, count = x.mech, x.metric, x.size, x.count
  local seg, p = x.seg, x.plan
  local deadline = x.deadline

  if mech == "ring" then
    local r = x.rings
    local function put(ring, s)
      local ok, err = ring:put(s, math.max(0, deadline - shm.now()))
      if not ok then error("ring put: " .. tostring(err), 0) end
    end
    local function get(ring)
      local s, err = ring:get(math.max(0, deadline - shm.now()))
      if not s then error("ring get: " .. tostring(err), 0) end
      return s
    end
    if metric == "throughput" then
      local make = maker(size)
      if side == 1 then return function() for i = 0, count - 1 do put(r[1], make(i)) end end end
      return function() for i = 0, count - 1 do check(get(r[1]), size, i) end end
    end
    if side == 1 then return function(n) for _ = 1, n do put(r[1], "p"); get(r[2]) end end end
    return function(n) for _ = 1, n do get(r[1]); put(r[2], "q") end end
  end

  if mech == "pipe" or mech == "unix" then
    local write, rd = x.write, x.reader
    if metric == "throughput" then
      local make = maker(size)
      if side == 1 then
        return function()
          for i = 0, count - 1 do write(make(i)) end
          if x.flush then x.flush() end
        end
      end
      local chk = check_stream(size)
      return function() rd.consume(size * count, chk) end
    end
    if side == 1 then return function(n) for _ = 1, n do write("p"); rd.take(1) end end end
    return function(n) for _ = 1, n do rd.take(1); write("q") end end
  end

  -- The hand-off mechanisms: a signal per direction. For throughput, direction 1 says "the
  -- buffer is full" and 2 "it is empty" (alternating access, the course's transfer); for
  -- latency they are the ping and the pong.
  local post, wait
  if mech == "sem" then
    local s = {shm.sem(seg, p.sem[1]), shm.sem(seg, p.sem[2])}
    post = function(d) assert(s[d]:post()) end
    wait = function(d)
      local ok, err = s[d]:wait(math.max(0, deadline - shm.now()))
      if not ok then error("sem wait: " .. tostring(err), 0) end
    end
  elseif mech == "eventfd" then
    local e = x.events
    post = function(d) assert(e[d]:notify(1)) end
    wait = function(d)
      local n, err = e[d]:wait()
      if not n then error("eventfd wait: " .. tostring(err), 0) end
    end
  elseif mech == "futex" then
    -- The C baseline's protocol on a word per direction: 0 nothing posted, 1 posted, 2 the
    -- waiter sleeps. The poster calls futex_wake only when it replaces a 2, so a waiter that
    -- caught the post while spinning costs no system call. Only the waiter writes 0 and 2 and
    -- only the poster writes 1, so a failed 0 -> 1 means the word was 2.
    local cas, now = seg.cas, shm.now
    post = function(d)
      local off = p.flag[d]
      if not cas(seg, "u32", off, 0, 1) then
        assert(cas(seg, "u32", off, 2, 1))
        seg:futex_wake(off, 1)
      end
    end
    wait = function(d)
      local off = p.flag[d]
      while not cas(seg, "u32", off, 1, 0) do
        local ok, old = cas(seg, "u32", off, 0, 2)
        if ok or old == 2 then
          local v, err = seg:futex_wait(off, 2, math.max(0, deadline - now()))
          if not v and err ~= "changed" then error("futex wait: " .. tostring(err), 0) end
        end
      end
    end
  else -- spin
    local load, store, now = seg.load, seg.store, shm.now
    post = function(d) store(seg, "u32", p.flag[d], 1) end
    -- Polls the flag; after 2 ms without it, each check sleeps 1 ms, so a peer that is not
    -- running (fewer free cores than spinners) gets the core, and the loop runs its watches.
    wait = function(d)
      local off, n, since = p.flag[d], 0, nil
      while load(seg, "u32", off) ~= 1 do
        n = n + 1
        if n & 1023 == 0 then
          local t = now()
          if t > deadline then error("spin wait: deadline passed", 0) end
          if not since then since = t elseif t - since > 0.002 then shm.sleep(0.001) end
        end
      end
      store(seg, "u32", off, 0)
    end
  end
  if metric == "latency" then
    if side == 1 then return function(n) for _ = 1, n do post(1); wait(2) end end end
    return function(n) for _ = 1, n do wait(1); post(2) end end
  end
  local data = p.data
  if side == 1 then
    local make = maker(size)
    return function()
      for i = 0, count - 1 do
        wait(2)
        seg:write(data, make(i))
        post(1)
      end
    end
  end
  return function()
    for i = 0, count - 1 do
      wait(1)
      local s = seg:read(data, size)
      post(2)
      check(s, size, i)
    end
  end
end

-- ------------------------------------------------------------ peer

-- Ends this process within 50 ms of its parent's death: a dead parent's children are
-- reparented, so the parent pid changes.
local function watch_parent(what)
  local parent = uv.os_getppid()
  local t = uv.new_timer()
  t:start(50, 50, function()
    if uv.os_getppid() ~= parent then cli.die(what .. ": the parent process died") end
  end)
  t:unref()
  return t
end

local function peer(sockname)
  local watch = watch_parent("peer")
  local c, err = shm.unix.connect{abstract = sockname, wait = 5}
  if not c then cli.die("peer: connect: " .. tostring(err)) end
  local msg, objs = c:recv()
  local mech, metric, size, count, rounds, left =
    tostring(msg):match("^(%a+) (%a+) (%d+) (%d+) (%d+) ([%d.]+)$")
  if not (mech and objs and objs[1]) then cli.die("peer: bad set-up message " .. ("%q"):format(tostring(msg))) end
  local x = {mech = mech, metric = metric, size = math.tointeger(size),
             count = math.tointeger(count), seg = objs[1], deadline = shm.now() + tonumber(left)}
  x.plan = plan(metric, x.size)
  if x.seg:size() < x.plan.total then cli.die("peer: the segment is smaller than the plan") end
  local ctl = reader(socket_source(c))
  if mech == "ring" then
    x.rings = {assert(shm.ring.attach(x.seg, x.plan.ring[1])), assert(shm.ring.attach(x.seg, x.plan.ring[2]))}
  elseif mech == "eventfd" then
    x.events = {objs[2], objs[3]}
  elseif mech == "unix" then
    x.reader, x.write = ctl, function(s) assert(c:send(s)) end
  elseif mech == "pipe" then
    -- The runner gave us the pipes as descriptors 3 (to us) and 4 (back).
    local rp, wp = uv.new_pipe(false), uv.new_pipe(false)
    assert(rp:open(3))
    assert(wp:open(4))
    local w = pipe_writer(wp)
    x.reader, x.write, x.flush = reader(pipe_source(rp)), w.write, w.flush
    x.handles = {rp, wp}
  end
  local run = transfer(x, 2)
  assert(c:send("R"))
  for _ = 1, math.tointeger(rounds) do
    run(x.count)
    if x.flush then x.flush() end
    assert(c:send("D"))
  end
  -- The runner closes its end when it is done with us.
  ctl.take(1)
  for _, h in ipairs(x.handles or {}) do h:close() end
  for _, o in ipairs(objs) do o:close() end
  c:close()
  watch:close()
end

-- ------------------------------------------------------------ runner

local function fmt_result(mech, metric, size, count, seconds, value, unit)
  return ("result mech=%s metric=%s impl=lua size=%d count=%d seconds=%.6f value=%.6g unit=%s")
         :format(mech, metric, size, count, seconds, value, unit)
end

-- Throughput: the start time (the end comes when the peer reports it has everything).
local function timed(run)
  local t0 = shm.now()
  run()
  return t0
end

-- Latency, as bench/baseline.c times it: batches of 100 round trips, the median batch's pace
-- times the count, so a burst of noise spoils a few batches and not the figure. Round trips
-- that do not fill a batch run first, untimed.
local BATCH = 100
local function batches(run, count)
  local b = math.min(count, BATCH)
  if count % b > 0 then run(count % b) end
  local t = {}
  for i = 1, count // b do
    local t0 = shm.now()
    run(b)
    t[i] = shm.now() - t0
  end
  table.sort(t)
  return t[#t // 2 + 1] / b * count
end

local function runner(o)
  local mech, metric = o.run.mech, o.run.metric
  local function skip(reason)
    print(("skip mech=%s metric=%s impl=lua reason=%s"):format(mech, metric,
          (tostring(reason):gsub("\n", " "))))
    shm.exit(0)
  end
  if not BY_NAME[mech] or (metric ~= "throughput" and metric ~= "latency") then
    cli.die("--run: unknown measurement " .. mech .. " " .. metric, 2)
  end
  if BY_NAME[mech].why then skip(BY_NAME[mech].why) end
  local watch = watch_parent("runner")
  local child, finished, exited, exit_park = nil, false, false, parking()
  -- A transfer that hangs (a wait without a timeout, a peer that stopped) ends here.
  local limit = uv.new_timer()
  limit:start(o.deadline * 1000, 0, function()
    if child and not exited then uv.process_kill(child, "sigkill") end
    skip(("deadline passed (%d s)"):format(o.deadline))
  end)
  limit:unref()
  local size = metric == "throughput" and o.size or 1
  local x = {mech = mech, metric = metric, size = size, count = o.count,
             deadline = shm.now() + o.deadline}
  local ok, err = pcall(function()
    x.plan = plan(metric, size)
    x.seg = assert(shm.memfd("bench", {size = x.plan.total}))
    local objs = {x.seg}
    if mech == "ring" then
      x.rings = {assert(shm.ring.create(x.seg, x.plan.ring[1], x.plan.capacity)),
                 assert(shm.ring.create(x.seg, x.plan.ring[2], x.plan.capacity))}
    elseif mech == "sem" then
      -- Throughput starts with an empty buffer: "empty" holds one token.
      assert(shm.sem(x.seg, x.plan.sem[1]):init(0))
      assert(shm.sem(x.seg, x.plan.sem[2]):init(metric == "throughput" and 1 or 0))
    elseif mech == "eventfd" then
      x.events = {assert(shm.eventfd{init = 0}),
                  assert(shm.eventfd{init = metric == "throughput" and 1 or 0})}
      objs[2], objs[3] = x.events[1], x.events[2]
    elseif mech == "spin" or mech == "futex" then
      x.seg:store("u32", x.plan.flag[2], metric == "throughput" and 1 or 0)
    end
    -- The peer shares our stdin (main gave us none), stdout and stderr. luv reads stdio up to
    -- its length, so the table has no holes.
    local stdio = {0, 1, 2}
    local pipes
    if mech == "pipe" then
      if not uv.pipe then error("this luv has no uv.pipe", 0) end
      pipes = {assert(uv.pipe({nonblock = true}, {nonblock = true})),
               assert(uv.pipe({nonblock = true}, {nonblock = true}))}
      stdio = {0, 1, 2, pipes[1].read, pipes[2].write}
    end
    local name = ("shmhost_bench_%d"):format(shm.pid())
    local srv = assert(shm.unix.listen{abstract = name})
    local pid
    child, pid = uv.spawn(uv.exepath(), {args = {SCRIPT, "--peer", name}, stdio = stdio},
      function(code, sig)
        exited = true
        child:close()
        if not finished then
          skip(("the peer (pid %d) ended early: status %d, signal %d"):format(pid, code, sig))
        end
        exit_park.wake()
      end)
    if not child then error("spawn " .. uv.exepath() .. ": " .. tostring(pid), 0) end
    if pipes then
      -- Our copies of the peer's ends: closed, so the peer's exit shows as end of file.
      uv.fs_close(pipes[1].read)
      uv.fs_close(pipes[2].write)
      local wp, rp = uv.new_pipe(false), uv.new_pipe(false)
      assert(wp:open(pipes[1].write))
      assert(rp:open(pipes[2].read))
      local w = pipe_writer(wp)
      x.write, x.flush, x.reader = w.write, w.flush, reader(pipe_source(rp))
      x.handles = {wp, rp}
    end
    local c = assert(srv:accept())
    srv:close()
    local ctl = reader(socket_source(c))
    if mech == "unix" then x.reader, x.write = ctl, function(s) assert(c:send(s)) end end
    assert(c:send(("%s %s %d %d %d %.3f"):format(mech, metric, size, o.count, o.rounds,
                                                 x.deadline - shm.now()), objs))
    local run = transfer(x, 1)
    if ctl.take(1) ~= "R" then error("the peer did not get ready", 0) end
    local best
    for _ = 1, o.rounds do
      local dt = metric == "throughput" and timed(run) or batches(run, o.count)
      if ctl.take(1) ~= "D" then error("the peer did not finish the transfer", 0) end
      if metric == "throughput" then dt = shm.now() - dt end
      if not best or dt < best then best = dt end
    end
    finished = true
    assert(c:send("E"))
    -- The peer ends by itself now; its exit callback closes the process handle.
    if not exited then
      local t = uv.new_timer()
      t:start(5000, 0, exit_park.wake)
      exit_park.wait()
      t:close()
    end
    if not exited then error("the peer did not end after the transfer", 0) end
    for _, h in ipairs(x.handles or {}) do h:close() end
    c:close()
    best = math.max(best, 1e-9)
    local value = metric == "throughput" and size * o.count / best or best * 1e9 / o.count
    print(fmt_result(mech, metric, size, o.count, best, value,
                     metric == "throughput" and "B/s" or "ns"))
  end)
  if not ok then
    if child and not exited then uv.process_kill(child, "sigkill") end
    skip(err)
  end
  limit:close()
  watch:close()
end


-- ------------------------------------------------------------ main: running the measurements

-- Runs exe with args in a process group of its own (detached: setsid), capturing stdout and
-- stderr, and kills the whole group when `secs` pass. Returns {code, sig, out, err, timeout}
-- or nil and a message when it cannot start.
local function run(exe, args, secs)
  local res, out, err = {}, {}, {}
  local outp, errp = uv.new_pipe(false), uv.new_pipe(false)
  local task, left = coroutine.running(), 3
  local function step()
    left = left - 1
    if left == 0 then shm.resume(task) end
  end
  local proc, pid
  proc, pid = uv.spawn(exe, {args = args, stdio = {nil, outp, errp}, detached = true},
    function(code, sig)
      res.code, res.sig = code, sig
      proc:close()
      step()
    end)
  if not proc then
    outp:close()
    errp:close()
    return nil, tostring(pid)
  end
  for _, s in ipairs{{outp, out}, {errp, err}} do
    local h, buf = s[1], s[2]
    h:read_start(function(_, data)
      if data then buf[#buf + 1] = data else h:close(); step() end
    end)
  end
  local timer = uv.new_timer()
  timer:start(math.floor(secs * 1000), 0, function()
    res.timeout = true
    uv.kill(-pid, "sigkill")
  end)
  shm.suspend()
  timer:close()
  -- Whatever the child left running in its group goes with it.
  uv.kill(-pid, "sigkill")
  res.out, res.err = table.concat(out), table.concat(err)
  return res
end

local function last_line(s)
  local l = nil
  for x in s:gmatch("[^\n]+") do l = x end
  return l or "no message"
end

-- Reads `result` and `skip` lines (the baseline's format) into t["mech/metric"].
local function parse(out, t)
  for l in out:gmatch("[^\n]+") do
    local kind, rest = l:match("^(%a+) (.*)$")
    if kind == "result" or kind == "skip" then
      local f = {}
      for k, v in (rest:gsub(" reason=.*$", "")):gmatch("(%w+)=(%S+)") do f[k] = v end
      if f.mech and f.metric then
        local key, v = f.mech .. "/" .. f.metric, tonumber(f.value)
        if kind == "skip" then t[key] = {why = rest:match("reason=(.*)$") or "skipped"}
        elseif v and v > 0 and v < math.huge then t[key] = {value = v}
        else t[key] = {why = "not a positive number: " .. tostring(f.value)} end
      end
    end
  end
end

-- The C baseline: next to the binary in a build tree, or in libexec when installed.
local function find_baseline()
  local dir = uv.exepath():match("^(.*)/[^/]*$") or "."
  local tried = {dir .. "/bench/baseline", dir .. "/../libexec/shmhost/baseline"}
  for _, p in ipairs(tried) do
    local st = uv.fs_stat(p)
    if st and st.type == "file" and uv.fs_access(p, "x") then return p end
  end
  return nil, "no C baseline at " .. table.concat(tried, " or ")
end

local function measure_all(o, selected)
  local C, L = {}, {}
  local progress = uv.guess_handle(2) == "tty"
  local function say(what)
    if progress then cli.say("measuring " .. what) end
  end
  local base, why_c = find_baseline()
  if base then
    -- Besides what was asked for, C measures what the ratios are taken against.
    local names, seen = {}, {}
    for _, n in ipairs{"memcpy", "cacheline", "ring", "pipe"} do names[#names + 1], seen[n] = n, true end
    for _, m in ipairs(selected) do
      if not seen[m.name] then names[#names + 1], seen[m.name] = m.name, true end
    end
    say("the C baseline")
    local r, err = run(base, {"--size", tostring(o.size), "--count", tostring(o.count),
                              "--rounds", tostring(o.rounds), "--deadline", tostring(o.deadline),
                              "--only", table.concat(names, ",")},
                       (2 * #names) * o.deadline + 10)
    if not r then why_c = "cannot start " .. base .. ": " .. err
    else
      parse(r.out, C)
      if r.timeout then why_c = "the C baseline passed its deadline"
      elseif r.code ~= 0 or r.sig ~= 0 then
        why_c = ("the C baseline failed (status %d, signal %d): %s"):format(r.code, r.sig,
                                                                             last_line(r.err))
      end
    end
  end
  -- Without a C pipe, the Lua pipe is the base of the "vs pipe" column: measure it even when
  -- it was not asked for (its row is shown only when it was).
  local lua_list = {table.unpack(selected)}
  if not (C["pipe/throughput"] and C["pipe/latency"] and C["pipe/throughput"].value
          and C["pipe/latency"].value) and not (o.only == nil or o.only.pipe) then
    lua_list[#lua_list + 1] = BY_NAME.pipe
  end
  for _, metric in ipairs(METRICS) do
    for _, m in ipairs(lua_list) do
      local key = m.name .. "/" .. metric
      if m.why then L[key] = {why = m.why}
      else
        say(m.name .. " from Lua (" .. metric .. ")")
        local r, err = run(uv.exepath(), {SCRIPT, "--run", m.name, metric,
                                          "--size", tostring(o.size), "--count", tostring(o.count),
                                          "--rounds", tostring(o.rounds),
                                          "--deadline", tostring(o.deadline)},
                           o.deadline + 15)
        if not r then L[key] = {why = "cannot start the runner: " .. err}
        else
          parse(r.out, L)
          -- A peer that failed says why on stderr; the runner only saw it end.
          local said = r.err:match("\n?shmhost: ([^\n]*)") or r.err:match("\n?bench: ([^\n]*)")
          if L[key] and L[key].why and said then L[key].why = L[key].why .. " (" .. said .. ")" end
          if not L[key] then
            L[key] = {why = r.timeout and "the runner passed its deadline"
                          or ("the runner failed (status %d, signal %d): %s")
                             :format(r.code, r.sig, last_line(r.err))}
          end
        end
      end
    end
  end
  return C, L, base, why_c
end

-- ------------------------------------------------------------ main: the table

-- Rows of one section and, for each, its ratios against the baselines that were measured.
-- A ratio is value / base in both sections: above 1 is faster for throughput, slower for
-- latency. `pipe` is the C pipe when the baseline ran, else the Lua pipe.
local function section(metric, selected, C, L, have_c)
  local first = metric == "throughput" and "memcpy" or "cacheline"
  local function base(t, mech) local b = t[mech .. "/" .. metric]; return b and b.value end
  local pipe_impl = base(C, "pipe") and "C" or "Lua"
  local cols = metric == "throughput"
    and {{"memcpy", "vs memcpy", base(C, "memcpy")}, {"c_ring", "vs C ring", base(C, "ring")}}
    or {{"cacheline", "vs cacheline", base(C, "cacheline")}}
  cols[#cols + 1] = {"pipe", "vs " .. pipe_impl .. " pipe", base(C, "pipe") or base(L, "pipe")}
  if have_c then cols[#cols + 1] = {"c_same", "vs C same"} end
  local shown = {}
  for _, c in ipairs(cols) do
    if c[1] == "c_same" or c[3] then shown[#shown + 1] = c end
  end
  local rows = {}
  local function add(mech, impl, t)
    local r = t[mech .. "/" .. metric] or {why = "not measured"}
    local row = {mech = mech, impl = impl, value = r.value, why = r.why, ratios = {}}
    if r.value then
      for _, c in ipairs(shown) do
        local b = c[1] == "c_same" and impl == "Lua" and base(C, mech) or c[3]
        if b and b > 0 then row.ratios[c[1]] = r.value / b end
      end
    end
    rows[#rows + 1] = row
  end
  if have_c then add(first, "C", C) end
  for _, m in ipairs(selected) do
    if have_c then add(m.name, "C", C) end
    add(m.name, "Lua", L)
  end
  return {metric = metric, cols = shown, rows = rows, pipe = pipe_impl}
end

local function print_table(o, sections, base, why_c)
  print(("shmhost bench: throughput of %d messages of %d bytes, latency of %d round trips " ..
         "of 1 byte, best of %d round(s); all in this run"):format(o.count, o.size, o.count, o.rounds))
  print(base and ("C baseline: " .. base) or ("C baseline: unavailable (" .. why_c .. ")"))
  if base and why_c then print("C baseline: " .. why_c) end
  for _, s in ipairs(sections) do
    local unit = s.metric == "throughput" and "MB/s" or "us"
    local head = ("\n%-10s %-4s %12s"):format(s.metric:upper(), "impl", unit)
    for _, c in ipairs(s.cols) do head = head .. ("  %12s"):format(c[2]) end
    print(head)
    for _, r in ipairs(s.rows) do
      local l = ("%-10s %-4s"):format(r.mech, r.impl)
      if r.value then
        local v = s.metric == "throughput" and r.value / 1e6 or r.value / 1e3
        l = l .. ("%13.3f"):format(v)
        for _, c in ipairs(s.cols) do
          local x = r.ratios[c[1]]
          -- %g keeps small ratios from printing as zero (0.0003 stays 0.0003).
          l = l .. (x and ("  %12.4g"):format(x) or ("  %12s"):format("-"))
        end
      else
        l = l .. "  unavailable: " .. r.why
      end
      print(l)
    end
  end
end

-- JSON out of plain tables; a table with `n` set is an array of n elements.
local function json(v)
  local t = type(v)
  if t == "string" then
    return '"' .. v:gsub('[%c"\\]', function(ch)
      return ({['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n"})[ch] or ("\\u%04x"):format(ch:byte())
    end) .. '"'
  elseif t == "number" then
    if math.type(v) == "integer" then return tostring(v) end
    assert(v == v and v > -math.huge and v < math.huge, "a non-finite number in JSON")
    return ("%.6g"):format(v)
  elseif t == "boolean" then return tostring(v)
  elseif v == nil then return "null" end
  local parts = {}
  if v.n then
    for i = 1, v.n do parts[i] = json(v[i]) end
    return "[" .. table.concat(parts, ",") .. "]"
  end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do parts[#parts + 1] = json(k) .. ":" .. json(v[k]) end
  return "{" .. table.concat(parts, ",") .. "}"
end

local function print_json(o, sections, base, why_c)
  local doc = {size = o.size, count = o.count, rounds = o.rounds, baseline = base,
               baseline_error = why_c}
  for _, s in ipairs(sections) do
    local rows = {n = #s.rows}
    for i, r in ipairs(s.rows) do
      rows[i] = {mech = r.mech, impl = r.impl:lower(), value = r.value, unavailable = r.why,
                 unit = r.value and (s.metric == "throughput" and "B/s" or "ns") or nil,
                 ratios = r.value and r.ratios or nil}
    end
    doc[s.metric] = rows
    doc[s.metric .. "_pipe"] = s.pipe:lower()
  end
  print(json(doc))
end

local function main(o)
  local selected = {}
  for _, m in ipairs(MECHS) do
    if not o.only or o.only[m.name] then selected[#selected + 1] = m end
  end
  local C, L, base, why_c = measure_all(o, selected)
  local have_c = base ~= nil and next(C) ~= nil
  local sections = {section("throughput", selected, C, L, have_c),
                    section("latency", selected, C, L, have_c)}
  if o.json then print_json(o, sections, base, why_c) else print_table(o, sections, base, why_c) end
end

local o = options(arg)
if o.peer then peer(o.peer)
elseif o.run then runner(o)
else main(o) end
