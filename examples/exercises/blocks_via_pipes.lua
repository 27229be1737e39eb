-- Exercise (POSIX course, "other synchronization schemes"): data in numbered blocks of a segment, block numbers over a pair of pipes, against a semaphore pair forcing alternating access
--
-- usage: shmhost exercises/blocks_via_pipes [MIB] [BLOCKS] [BLOCK-KIB]
--
-- The course notes that a pair of semaphores forcing alternating access is expensive for
-- large transfers: every block costs two hand-offs (two context switches), and neither side
-- works while the other does. Its alternative: divide the segment into numbered blocks and
-- send only metadata through a pair of pipes: "block k is filled with n bytes" one way,
-- "block k is empty again" the other. The writer runs ahead as far as it has empty blocks,
-- and pipes, unlike semaphores, work with poll/epoll (here: the writer reads its pipe on the
-- event loop). This script moves the same data to a reader process both ways and compares;
-- the reader checks every block against what was sent at that position (PASS means both
-- transfers were byte-exact, whatever the speeds).
local shm = require "shmhost"
local uv = require "luv"
local E = require "exercise"

local mib = math.tointeger(tonumber(arg[1] or "32"))
local nblocks = math.tointeger(tonumber(arg[2] or "8"))
local block_kib = math.tointeger(tonumber(arg[3] or "64"))
if not mib or mib < 1 or not nblocks or nblocks < 1 or nblocks > 4096
   or not block_kib or block_kib < 1 or block_kib > 16384 then
  io.stderr:write("usage: shmhost exercises/blocks_via_pipes [MIB>=1] [BLOCKS 1..4096] [BLOCK-KIB 1..16384]\n")
  os.exit(2)
end
local BLOCK, TOTAL = block_kib * 1024, mib * 1024 * 1024
local CHUNKS = (TOTAL + BLOCK - 1) // BLOCK
local END = 0xffffffff

-- Chunk i of the data, the same on both sides: one of seven pseudo-random blocks in turn.
local CHUNK = [[
local BLOCK, TOTAL = ...
local pool, x = {}, 0x9E3779B97F4A7C15
for k = 1, 7 do
  local parts = {}
  for i = 1, (BLOCK + 7) // 8 do
    x = x ~ (x << 13); x = x ~ (x >> 7); x = x ~ (x << 17)
    parts[i] = string.pack("<i8", x)
  end
  pool[k] = table.concat(parts):sub(1, BLOCK)
end
local last = (TOTAL - 1) // BLOCK + 1
local short = pool[last % 7 + 1]:sub(1, TOTAL - (last - 1) * BLOCK)
return function(i) if i == last then return short end return pool[i % 7 + 1] end
]]
local chunk = load(CHUNK)(BLOCK, TOTAL)

-- The alternating scheme: wsem (writer's turn), rsem (reader's turn), a count, one buffer.
local Alt = shm.layout{ {"wsem", "sem"}, {"rsem", "sem"}, {"cnt", "int"} }
local ALT_DATA = (Alt.size + 63) & ~63

-- The reader, either way; its report goes to stderr (stdout is a pipe of the protocol).
local READER = [[
local shm = require "shmhost"
local how, name, BLOCK, TOTAL = arg[1], arg[2], tonumber(arg[3]), tonumber(arg[4])
local chunk = load(arg[5])(BLOCK, TOTAL)
local seg = assert(shm.open(name))
local got, bytes, bad = 0, 0, 0
local function check(s)
  got, bytes = got + 1, bytes + #s
  if s ~= chunk(got) then bad = bad + 1 end
end
if how == "pipes" then
  -- Metadata in: 8 bytes (block number, byte count) per filled block. Out: 4 bytes (block
  -- number) per emptied block.
  while true do
    local rec = io.stdin:read(8)
    if rec == nil or #rec < 8 then error("the writer's pipe ended early") end
    local k, n = string.unpack("<I4I4", rec)
    if k == 0xffffffff then break end
    check(seg:read(k * BLOCK, n))
    io.stdout:write(string.pack("<I4", k))
    io.stdout:flush()
  end
else
  local Alt = shm.layout{ {"wsem", "sem"}, {"rsem", "sem"}, {"cnt", "int"} }
  local v = Alt:view(seg)
  local DATA = (Alt.size + 63) & ~63
  while true do
    assert(v.rsem:wait(30), "no block for 30 s")
    local n = v.cnt
    if n == 0 then break end
    check(seg:read(DATA, n))
    v.wsem:post()
  end
end
io.stderr:write(("got %d chunks %d bytes %d bad end %.9f\n"):format(got, bytes, bad, shm.now()))
seg:close()
]]

local function start_reader(how, name, stdio)
  local c = E.shmhost{"-e", READER, how, name, tostring(BLOCK), tostring(TOTAL), CHUNK,
                      stdin = stdio and stdio.stdin, stdout = stdio and stdio.stdout, timeout = 120}
  shm.sleep(0.1) -- its start-up is not what is measured
  return c
end

-- The reader's report; returns the time its last check ended.
local function report(what, r)
  local got, bytes, bad, t_end = r.stderr:match("got (%d+) chunks (%d+) bytes (%d+) bad end ([%d.]+)")
  if not E.check(r.code == 0 and got ~= nil, what .. ": the reader ended with its report (" .. r:status() .. ")") then
    E.show(r)
    return nil
  end
  E.check(tonumber(got) == CHUNKS and tonumber(bytes) == TOTAL and tonumber(bad) == 0,
          ("%s: %s of %d chunks, %s of %d bytes, %s differing"):format(what, got, CHUNKS, bytes, TOTAL, bad))
  return tonumber(t_end)
end

E.run(function()
  print(("%d MiB in chunks of %d KiB"):format(mib, block_kib))
  local me = coroutine.running()

  -- 1. Alternating access with two semaphores and one buffer.
  local aname = E.name("alt")
  local aseg <close> = assert(shm.open(aname, {create = true, excl = true, size = ALT_DATA + BLOCK}))
  local v = Alt:view(aseg)
  assert(v.wsem:init(1))
  assert(v.rsem:init(0))
  local r = start_reader("alternate", aname)
  local t0 = shm.now()
  for i = 1, CHUNKS + 1 do
    assert(v.wsem:wait(30), "the reader stopped answering")
    local s = i <= CHUNKS and chunk(i) or ""
    aseg:write(ALT_DATA, s)
    v.cnt = #s
    v.rsem:post()
  end
  local t_end = report("semaphore pair", r:wait())
  local alt_secs = t_end and t_end - t0
  aseg:close()

  -- 2. Numbered blocks, metadata over two pipes.
  local bname = E.name("blocks")
  local bseg <close> = assert(shm.open(bname, {create = true, excl = true, size = nblocks * BLOCK}))
  local filled = assert(uv.pipe({nonblock = false}, {nonblock = false}))  -- writer -> reader
  local emptied = assert(uv.pipe({nonblock = false}, {nonblock = false})) -- reader -> writer
  r = start_reader("pipes", bname, {stdin = filled.read, stdout = emptied.write})
  uv.fs_close(filled.read)
  uv.fs_close(emptied.write)
  local out, back = uv.new_pipe(false), uv.new_pipe(false)
  assert(out:open(filled.write))
  assert(back:open(emptied.read))
  -- Every block is empty at first; the reader's 4-byte records give blocks back.
  local free, pending, waiting, waits = {}, "", false, 0
  for k = nblocks - 1, 0, -1 do free[#free + 1] = k end
  back:read_start(function(err, data)
    if data then
      pending = pending .. data
      while #pending >= 4 do
        free[#free + 1] = string.unpack("<I4", pending)
        pending = pending:sub(5)
      end
    end
    if waiting and (#free > 0 or not data or err) then
      waiting = false
      shm.resume(me)
    end
  end)
  t0 = shm.now()
  for i = 1, CHUNKS do
    while #free == 0 do
      waits = waits + 1
      waiting = true
      shm.suspend()
      if #free == 0 and r.exited then error("the reader ended early") end
    end
    local k = table.remove(free)
    local s = chunk(i)
    bseg:write(k * BLOCK, s)
    out:write(string.pack("<I4I4", k, #s))
  end
  out:write(string.pack("<I4I4", END, 0))
  out:shutdown(function() out:close() end)
  t_end = report("blocks and pipes", r:wait())
  local pipe_secs = t_end and t_end - t0
  back:close()

  if alt_secs and pipe_secs then
    print(("%-36s %8.1f MB/s  %.3f s  (%d hand-offs each way)")
          :format("semaphore pair, one buffer:", TOTAL / alt_secs / 1e6, alt_secs, CHUNKS + 1))
    print(("%-36s %8.1f MB/s  %.3f s  (no empty block %d times)")
          :format(nblocks .. " blocks, block numbers over pipes:", TOTAL / pipe_secs / 1e6, pipe_secs, waits))
    print(("blocks and pipes / semaphore pair: %.2fx"):format(alt_secs / pipe_secs))
  end
  return ("%d MiB arrived byte-exact both ways"):format(mib)
end)
