-- Exercise (POSIX course): random data of several sizes through xfr_writer and xfr_reader, with two semaphores and with --ring, compared byte for byte
--
-- usage: shmhost exercises/xfr_roundtrip [MAX-KIB]
--
-- The course's exercise: a writer copies stdin into a shared-memory object a block at a time,
-- a reader copies each block to stdout, two semaphores give them exclusive, alternating
-- access (wsem = 1, rsem = 0), and a block of 0 bytes ends the data. The course tests it with
--     dd if=/dev/urandom of=infile count=100000; writer < infile & reader > outfile; diff
-- and so does this script, for the sizes where such programs usually go wrong: nothing at
-- all, one byte, exactly one block, one byte more, and a large odd size; then again through
-- the ring (--ring), and with a small block. The reader starts first each time (it waits for
-- the writer), and the files must be equal.
local shm = require "shmhost"
local uv = require "luv"
local E = require "exercise"

local max_kib = math.tointeger(tonumber(arg[1] or "1024"))
if not max_kib or max_kib < 1 then
  io.stderr:write("usage: shmhost exercises/xfr_roundtrip [MAX-KIB>=1]\n")
  os.exit(2)
end

local function open_fd(path, flags)
  return assert(uv.fs_open(path, flags, tonumber("600", 8)))
end

-- One transfer: writes `data` to a file, runs reader and writer on a fresh object name, and
-- returns what the reader wrote and the two children.
local function transfer(n, data, extra)
  local dir = E.path("xfr")
  local inpath, outpath = dir .. "_in", dir .. "_out"
  E.write_file(inpath, data)
  local name = E.name("xfr" .. n)
  local function command(prog, fds)
    local c = {prog, "--name", name, table.unpack(extra)}
    c.stdin, c.stdout, c.timeout = fds.stdin, fds.stdout, 60
    return c
  end
  local out = open_fd(outpath, "w")
  local r = E.shmhost(command("xfr_reader", {stdout = out}))
  uv.fs_close(out)
  local input = open_fd(inpath, "r")
  local w = E.shmhost(command("xfr_writer", {stdin = input}))
  uv.fs_close(input)
  w:wait()
  r:wait()
  local got = E.read_file(outpath)
  os.remove(inpath)
  os.remove(outpath)
  return got, w, r
end

E.run(function()
  E.on_exit(function()
    os.remove(E.path("xfr") .. "_in")
    os.remove(E.path("xfr") .. "_out")
  end)
  local cases = {
    {0, {}}, {1, {}}, {65536, {}}, {65537, {}}, {max_kib * 1024 + 13, {}},
    {0, {"--ring"}}, {65537, {"--ring"}}, {max_kib * 1024 + 13, {"--ring"}},
    {100000, {"--block", "4096"}}, {100000, {"--ring", "--block", "4096"}},
  }
  local good = 0
  for i, c in ipairs(cases) do
    local size, extra = c[1], c[2]
    local data = E.random_bytes(size, 7919 * i)
    local t0 = shm.now()
    local got, w, r = transfer(i, data, extra)
    local same = got == data
    local how = #extra > 0 and table.concat(extra, " ") or "semaphores"
    print(("%-22s %9d bytes in, %9s bytes out, %s (%.2f s)"):format(how, size,
          got and #got or "no", same and "equal" or "DIFFERENT", shm.now() - t0))
    if E.check(w.code == 0 and r.code == 0, ("writer %s, reader %s"):format(w:status(), r:status())) then
      if E.check(same, how .. ": " .. size .. " bytes came out equal") then good = good + 1 end
    else
      E.show(w); E.show(r)
    end
    E.check(not io.open("/dev/shm" .. E.name("xfr" .. i)), "the writer removed its object")
  end
  return ("%d of %d transfers byte for byte equal"):format(good, #cases)
end)
