-- A peer that truncates a segment while this script reads it: the SIGBUS that the next touch
-- raises becomes a Lua error, and the process lives on.
--
-- Under ASan this runs with ASAN_OPTIONS=handle_sigbus=0 (tests/tests.cmake sets it): ASan's
-- own SIGBUS handler would report the fault as a crash before the segment guard repairs it.
local T = require "testlib"
local shm = require "shmhost"

local truncated = "was truncated by a peer"

-- Another shmhost process opens the segment by name and shrinks it to nothing.
local function peer_truncates(name)
  local r = T.shmhost{"-e", "assert(assert(require('shmhost').open(arg[1])):resize(0))", name,
                      timeout = 10}
  T.eq(r.code, 0, "peer status: " .. r.stderr)
end

T.test("a POSIX segment truncated by a peer process raises on the next access", function()
  local name = T.name("trunc")
  local s <close> = assert(shm.open(name, {create = true, size = 3 * 4096}))
  s:write(0, "before")
  T.eq(s:read(0, 6), "before")
  peer_truncates(name)
  T.checkerr("segment " .. name .. " " .. truncated, function() return s:read(4096, 10) end)
  -- Every later access raises too, whatever touches it.
  T.checkerr(truncated, function() return s:read(0, 1) end)
  T.checkerr(truncated, function() return s:write(0, "x") end)
  T.checkerr(truncated, function() return s:get("u32", 0) end)
  T.checkerr(truncated, function() return s:load("u64", 8) end)
  T.checkerr(truncated, function() return s:resize(4096) end)
  -- The object itself is still there to ask about and to close.
  T.eq(s:stat().size, 0)
  T.eq(s:size(), 3 * 4096)
end)

T.test("each kind of access notices the truncation", function()
  local accesses = {
    function(s) return s:read(100, 10) end,
    function(s) return s:write(100, "0123456789") end,
    function(s) return s:get("f64", 104) end,
    function(s) return s:set("u16", 100, 7) end,
    function(s) return s:add("u32", 100, 1) end,
    function(s) return s:cas("u64", 104, 0, 1) end,
  }
  for i, access in ipairs(accesses) do
    local name = T.name("kind" .. i)
    local s <close> = assert(shm.open(name, {create = true, size = 4096}))
    peer_truncates(name)
    T.checkerr(truncated, access, s)
  end
end)

T.test("an unsealed memfd truncated through /proc by another process raises", function()
  local m <close> = assert(shm.memfd("guarded", {size = 8192}))
  m:write(0, "x")
  -- coreutils truncate opens /proc/PID/fd/N, which reopens the memfd itself, and ftruncates.
  local path = string.format("/proc/%d/fd/%d", shm.pid(), m:fd())
  local r = T.run{"truncate", "-s", "0", path, timeout = 10}
  T.eq(r.code, 0, "truncate: " .. r.stderr)
  T.checkerr("segment memfd:guarded " .. truncated, function() return m:read(0, 1) end)
end)

T.test("a sealed memfd cannot be truncated, so reads go on", function()
  local m <close> = assert(shm.memfd("sealed", {size = 8192, seal = true}))
  m:write(8000, "safe")
  local path = string.format("/proc/%d/fd/%d", shm.pid(), m:fd())
  local r = T.run{"truncate", "-s", "0", path, timeout = 10}
  T.ok(r.code ~= 0, "truncate of a sealed memfd fails")
  T.ok(r.stderr:find("Operation not permitted", 1, true), r.stderr)
  T.eq(m:read(8000, 4), "safe")
end)

T.test("a segment grown by a peer keeps working at its old size", function()
  local name = T.name("grow")
  local s <close> = assert(shm.open(name, {create = true, size = 4096}))
  local r = T.shmhost{"-e", "assert(assert(require('shmhost').open(arg[1])):resize(65536))", name,
                      timeout = 10}
  T.eq(r.code, 0, r.stderr)
  s:write(4000, "ok")
  T.eq(s:read(4000, 2), "ok")
  T.eq(s:stat().size, 65536)
  local again <close> = assert(shm.open(name))
  T.eq(again:size(), 65536)
end)

T.test("a script that ignores the error exits with status 1, not by SIGBUS", function()
  local name = T.name("uncaught")
  local c = T.start_shmhost{"-e", [[
    local shm = require "shmhost"
    local s = assert(shm.open(arg[1], {create = true, size = 4096}))
    print("ready")
    io.stdout:flush()
    while true do s:read(0, 1) shm.sleep(0.01) end
  ]], name, timeout = 20}
  T.ok(T.wait_until(function() return c:output():find("ready") end, 10), "child ready")
  local s <close> = assert(shm.open(name))
  T.eq(s:resize(0), true)
  c:wait()
  T.eq(c.signal, 0, "not killed by a signal")
  T.eq(c.code, 1)
  T.ok(c.stderr:find("segment " .. name .. " " .. truncated, 1, true), c.stderr)
  T.eq(io.open("/dev/shm" .. name) == nil, true, "the child removed what it created")
end)

T.done()
