-- Layouts and views: declaring layouts, every misuse shm.layout refuses, reading and writing
-- every type through a view (checked byte for byte against seg:get), C strings, arrays, nested
-- layouts, range checks, bounds, read-only and closed segments, and a second process that
-- sees what a view wrote.
local T = require "testlib"
local shm = require "shmhost"

local Vec3 = shm.layout{ {"x", "float"}, {"y", "float"}, {"z", "float"} }
local Day56 = shm.layout{
  {"lock", "mutex"}, {"activation", "bool"}, {"counter", "int"}, {"message", "char[256]"} }

T.test("layout size, align, offsets, fields", function()
  T.eq(Day56:offset("lock"), 0)
  T.ok(Day56:offset("activation") > 0)
  T.eq(Day56:offset("counter") % 4, 0)
  T.eq(Day56:offset("message"), Day56:offset("counter") + 4)
  T.eq(Day56.size % Day56.align, 0)
  T.eq(Vec3.size, 12)
  T.eq(Vec3.align, 4)
  local P = shm.layout{ {"tag", "u8"}, {"pos", Vec3}, {"pts", Vec3, 4}, {"d", "double"} }
  T.eq(P:offset("pos"), 4)
  T.eq(P:offset("pos.z"), 12)
  T.eq(P:offset("pts"), 16)
  T.eq(P:offset("d"), 64)
  T.eq(P.size, 72)
  T.eq(P.align, 8)
  local f = P:fields()
  T.eq(#f, 4)
  T.eq(f[1].name, "tag"); T.eq(f[1].type, "u8"); T.eq(f[1].size, 1); T.eq(f[1].count, nil)
  T.eq(f[3].type, Vec3); T.eq(f[3].count, 4); T.eq(f[3].size, 48); T.eq(f[3].offset, 16)
  T.checkerr("no field 'nope'", P.offset, P, "nope")
  T.checkerr("is not a nested layout", P.offset, P, "tag.x")
  T.ok(tostring(P):find("shmhost.layout", 1, true))
end)

T.test("cdecl", function()
  local text = Day56:cdecl("shm_data")
  T.ok(text:find("#include <pthread.h>\n", 1, true), "pthread.h included")
  T.ok(text:find("#include <stdbool.h>\n", 1, true), "stdbool.h included")
  T.ok(text:find("struct shm_data {\n    pthread_mutex_t lock;\n    bool activation;\n" ..
                 "    int counter;\n    char message[256];\n};\n", 1, true), text)
  T.checkerr("bad argument #2", Day56.cdecl, Day56, "not valid")
  T.checkerr("not a C identifier", Day56.cdecl, Day56, "int")
end)

T.test("shm.layout refuses bad declarations", function()
  T.checkerr("empty layout", shm.layout, {})
  T.checkerr("table expected", shm.layout, "int")
  T.checkerr("duplicate field name 'a'", shm.layout, { {"a", "int"}, {"a", "char"} })
  T.checkerr("unknown type 'integer'", shm.layout, { {"a", "integer"} })
  T.checkerr("must be a positive integer", shm.layout, { {"a", "int[0]"} })
  T.checkerr("must be a positive integer", shm.layout, { {"a", "int[-2]"} })
  T.checkerr("must be a positive integer", shm.layout, { {"a", "int", 0} })
  T.checkerr("must be a positive integer", shm.layout, { {"a", Vec3, -1} })
  T.checkerr("must be a positive integer", shm.layout, { {"a", "int", 1.5} })
  T.checkerr("arrays of arrays", shm.layout, { {"a", "int[2]", 3} })
  T.checkerr("unknown type 'int[2][3]'", shm.layout, { {"a", "int[2][3]"} })
  T.checkerr("not a C identifier", shm.layout, { {"2x", "int"} })
  T.checkerr("not a C identifier", shm.layout, { {"double", "int"} })
  T.checkerr("name (a string) expected", shm.layout, { {1, "int"} })
  T.checkerr("field #2: table {name, type} expected", shm.layout, { {"a", "int"}, "b" })
  T.checkerr("type (a string or a layout) expected", shm.layout, { {"a", 5} })
  T.checkerr("type (a string or a layout) expected", shm.layout, { {"a"} })
  T.checkerr("unexpected key", shm.layout, { {"a", "int"}, name = "x" })
  T.checkerr("at most {name, type, count}", shm.layout, { {"a", "int", 2, 3} })
  T.checkerr("layout too large", shm.layout, { {"a", "double", 1 << 50} })
end)

-- Every scalar type: what a view writes, seg:get reads back at the layout's offset.
local All = shm.layout{
  {"c", "char"}, {"sc", "signed char"}, {"uc", "unsigned char"}, {"b", "bool"},
  {"i8", "int8_t"}, {"u8", "uint8_t"}, {"i16", "int16_t"}, {"u16", "uint16_t"},
  {"i32", "int32_t"}, {"u32", "uint32_t"}, {"i64", "int64_t"}, {"u64", "uint64_t"},
  {"s", "short"}, {"us", "unsigned short"}, {"i", "int"}, {"u", "unsigned"}, {"l", "long"},
  {"ul", "unsigned long"}, {"ll", "long long"}, {"sz", "size_t"}, {"ssz", "ssize_t"},
  {"pid", "pid_t"}, {"f", "float"}, {"d", "double"}, {"a8", "i8"}, {"b8", "u8"},
  {"a16", "i16"}, {"b16", "u16"}, {"a32", "i32"}, {"b32", "u32"}, {"a64", "i64"},
  {"b64", "u64"}, {"f32", "f32"}, {"f64", "f64"} }

T.test("every scalar type round-trips and matches seg:get", function()
  local seg <close> = assert(shm.memfd("layout_all", {size = 4096}))
  local v = All:view(seg)
  local values = {
    c = -5, sc = -128, uc = 255, i8 = -128, u8 = 255, i16 = -32768, u16 = 65535,
    i32 = -2147483648, u32 = 4294967295, i64 = math.mininteger, u64 = 42, s = 32767,
    us = 65535, i = 2147483647, u = 4294967295, l = math.maxinteger, ul = 7,
    ll = math.mininteger, sz = 123456789012, ssz = -1, pid = shm.pid(), d = 98.6,
    a8 = 127, b8 = 0, a16 = -1, b16 = 1, a32 = -7, b32 = 3000000000, a64 = 1 << 62, b64 = 9,
    f64 = -0.5,
  }
  for k, x in pairs(values) do v[k] = x end
  v.b = true
  v.f = 1.5
  v.f32 = -2.25
  for k, x in pairs(values) do T.eq(v[k], x, k) end
  T.eq(v.b, true)
  T.eq(v.f, 1.5)
  T.eq(v.f32, -2.25)
  local get = { i8 = "i8", u8 = "u8", i16 = "i16", u16 = "u16", i32 = "i32", u32 = "u32",
    i64 = "i64", u64 = "u64", sc = "i8", uc = "u8", s = "i16", us = "u16", i = "i32",
    u = "u32", l = "i64", ul = "u64", ll = "i64", sz = "u64", ssz = "i64", pid = "i32",
    d = "f64", a8 = "i8", b8 = "u8", a16 = "i16", b16 = "u16", a32 = "i32", b32 = "u32",
    a64 = "i64", b64 = "u64", f64 = "f64" }
  for k, t in pairs(get) do T.eq(seg:get(t, All:offset(k)), values[k], "seg:get " .. k) end
  T.eq(seg:get("f32", All:offset("f")), 1.5)
  T.eq(seg:get("u8", All:offset("b")), 1)
  v.b = false
  T.eq(seg:get("u8", All:offset("b")), 0)
  -- A C peer may store any non-zero byte in a bool.
  seg:set("u8", All:offset("b"), 7)
  T.eq(v.b, true)
  -- u64 wraps as string.unpack("J") does.
  v.u64 = -1
  T.eq(seg:get("u64", All:offset("u64")), -1)
  T.eq(v.u64, -1)
  T.eq(v.u64, string.unpack("J", seg:read(All:offset("u64"), 8)))
  -- A float with an integer value is an integer.
  v.i = 3.0
  T.eq(math.type(v.i), "integer")
  T.eq(v.i, 3)
  -- The pairs of a view walk the fields in order.
  local names = {}
  for k in pairs(v) do names[#names + 1] = k end
  T.eq(#names, #All:fields())
  T.eq(names[1], "c"); T.eq(names[#names], "f64")
end)

T.test("range and type checks on assignment", function()
  local seg <close> = assert(shm.memfd("layout_range", {size = 4096}))
  local v = All:view(seg)
  v.i8 = 1
  T.checkerr("field 'i8': value 128 out of range for int8_t (-128..127)", function() v.i8 = 128 end)
  T.checkerr("out of range for uint8_t", function() v.u8 = -1 end)
  T.checkerr("out of range for unsigned char (0..255)", function() v.uc = 256 end)
  T.checkerr("out of range for int", function() v.i = 1 << 31 end)
  T.checkerr("out of range for uint32_t", function() v.u32 = 1 << 32 end)
  T.checkerr("out of range for short", function() v.s = -32769 end)
  T.checkerr("field 'i': integer expected, got string", function() v.i = "3" end)
  T.checkerr("no integer representation", function() v.i = 1.5 end)
  T.checkerr("integer expected, got nil", function() v.i = nil end)
  T.checkerr("field 'b': boolean expected, got number", function() v.b = 1 end)
  T.checkerr("field 'd': number expected, got boolean", function() v.d = true end)
  T.checkerr("out of range for float", function() v.f = 1e39 end)
  v.f = math.huge
  T.eq(v.f, math.huge)
  T.eq(v.i8, 1, "a refused assignment changes nothing")
  T.checkerr("no field 'nope'", function() return v.nope end)
  T.checkerr("no field 'nope'", function() v.nope = 1 end)
  T.checkerr("no field 1", function() return v[1] end)
end)

T.test("char[N] is a C string", function()
  local S = shm.layout{ {"tag", "char[8]"}, {"n", "int"} }
  local seg <close> = assert(shm.memfd("layout_str", {size = 64}))
  local v = S:view(seg)
  v.n = 77
  v.tag = "1234567"
  T.eq(v.tag, "1234567")
  T.eq(seg:read(0, 8), "1234567\0")
  v.tag = "ab"
  T.eq(v.tag, "ab")
  T.eq(seg:read(0, 8), "ab" .. string.rep("\0", 6), "the rest is zero-filled")
  v.tag = ""
  T.eq(v.tag, "")
  T.checkerr("field 'tag': string of 8 bytes too long for char[8] (at most 7 bytes)",
             function() v.tag = "12345678" end)
  T.checkerr("contains a NUL", function() v.tag = "a\0b" end)
  T.checkerr("string expected, got number", function() v.tag = 5 end)
  T.eq(v.n, 77, "a long string does not overflow into the next field")
  -- Reading stops at the first NUL, and an unterminated peer string stops at N.
  seg:write(0, "xy\0zw")
  T.eq(v.tag, "xy")
  seg:write(0, "ABCDEFGH")
  T.eq(v.tag, "ABCDEFGH")
end)

local Rec = shm.layout{
  {"tag", "u8"}, {"pos", Vec3}, {"pts", Vec3, 3}, {"samples", "i16[4]"}, {"names", "char[6]", 2},
  {"flags", "bool[2]"} }

T.test("arrays: 1-based, length, bounds, table assignment", function()
  local seg <close> = assert(shm.memfd("layout_arr", {size = 4096}))
  local v = Rec:view(seg)
  local s = v.samples
  T.eq(#s, 4)
  for i = 1, 4 do s[i] = i * 100 end
  T.eq(s[1], 100); T.eq(s[4], 400)
  T.eq(seg:get("i16", Rec:offset("samples")), 100)
  T.eq(seg:get("i16", Rec:offset("samples") + 6), 400)
  T.checkerr("index 5 out of range (1..4)", function() return s[5] end)
  T.checkerr("index 0 out of range (1..4)", function() s[0] = 1 end)
  T.checkerr("index must be an integer", function() return s.x end)
  T.checkerr("field 'samples[2]': value 40000 out of range", function() s[2] = 40000 end)
  v.samples = {1, 2}
  T.eq(s[1], 1); T.eq(s[2], 2); T.eq(s[3], 300, "values past the table are kept")
  T.checkerr("table of 5 values for an array of 4", function() v.samples = {1, 2, 3, 4, 5} end)
  T.checkerr("field 'samples[3]': integer expected, got string",
             function() v.samples = {7, 7, "x"} end)
  T.eq(s[1], 1, "a bad table is refused whole")
  T.checkerr("table of at most 4 values expected", function() v.samples = 5 end)
  local seen = 0
  for i, x in pairs(s) do seen = seen + 1; T.eq(x, s[i]) end
  T.eq(seen, 4)
  -- Arrays of strings and of bools.
  v.names = {"alpha", "beta"}
  T.eq(v.names[1], "alpha"); T.eq(v.names[2], "beta")
  T.checkerr("field 'names[1]': string of 6 bytes too long", function() v.names[1] = "sixsix" end)
  v.flags[2] = true
  T.eq(v.flags[1], false); T.eq(v.flags[2], true)
  T.ok(tostring(s):find("shmhost.array", 1, true))
end)

T.test("nested layouts and arrays of them", function()
  local seg <close> = assert(shm.memfd("layout_nest", {size = 4096}))
  local v = Rec:view(seg)
  v.pos.x = 1.5
  v.pos = {y = 2.5, z = 3.5}
  T.eq(v.pos.x, 1.5); T.eq(v.pos.y, 2.5); T.eq(v.pos.z, 3.5)
  T.eq(seg:get("f32", Rec:offset("pos.z")), 3.5)
  T.eq(#v.pts, 3)
  v.pts[2].y = 7
  T.eq(seg:get("f32", Rec:offset("pts") + Vec3.size + 4), 7.0)
  v.pts = { {x = 1}, {x = 2, y = 3}, {z = 4} }
  T.eq(v.pts[1].x, 1.0); T.eq(v.pts[2].y, 3.0); T.eq(v.pts[3].z, 4.0)
  T.checkerr("field 'pts[2]': no field 'w' in the nested layout",
             function() v.pts = { {x = 9}, {w = 1} } end)
  T.eq(v.pts[1].x, 1.0, "a bad nested table is refused whole")
  T.checkerr("field 'pos.x': number expected", function() v.pos = {x = "no"} end)
  T.checkerr("table of fields expected", function() v.pos = 3 end)
  -- A nested view keeps the segment alive after the script drops every other reference.
  local p = v.pts[3]
  v = nil
  collectgarbage(); collectgarbage()
  T.eq(p.z, 4.0)
end)

T.test("views: offsets, bounds, alignment, closed and read-only segments", function()
  local name = T.name("layout_ro")
  local seg = assert(shm.open(name, {create = true, excl = true, size = 2 * Rec.size}))
  local a, b = Rec:view(seg), Rec:view(seg, Rec.size)
  a.tag, b.tag = 1, 2
  T.eq(seg:get("u8", 0), 1); T.eq(seg:get("u8", Rec.size), 2)
  T.checkerr("bad argument #3", Rec.view, Rec, seg, 2 * Rec.size)
  T.checkerr("not a multiple of the layout's alignment", Rec.view, Rec, seg, 2)
  T.checkerr("must not be negative", Rec.view, Rec, seg, -4)
  T.checkerr("shmhost.segment expected", Rec.view, Rec, {})
  T.checkerr("outside segment", Day56.view, Day56, assert(shm.memfd("small", {size = 8})))
  local ro <close> = assert(shm.open(name, {readonly = true}))
  local r = Rec:view(ro)
  T.eq(r.tag, 1)
  T.checkerr("field 'tag': the segment is mapped read-only", function() r.tag = 5 end)
  T.checkerr("field 'names[1]': the segment is mapped read-only", function() r.names[1] = "x" end)
  T.eq(ro:get("u8", 0), 1)
  assert(seg:close())
  T.checkerr("closed", function() return a.tag end)
  T.checkerr("closed", function() a.tag = 1 end)
end)

-- A peer that shrinks the object under a view: the access raises instead of a SIGBUS. (Under
-- ASan the suite runs with handle_sigbus=0 so the segment guard, not ASan, takes the signal.)
T.test("a view over a segment a peer truncated raises", function()
  local name = T.name("layout_trunc")
  local seg <close> = assert(shm.open(name, {create = true, excl = true, size = 8192}))
  local L = shm.layout{ {"head", "int"}, {"pad", "char[4096]"}, {"tail", "i64"}, {"s", "char[8]"} }
  local v = L:view(seg)
  v.tail = 5
  local peer <close> = assert(shm.open(name))
  assert(peer:resize(0))
  T.checkerr("truncated", function() return v.tail end)
  T.checkerr("truncated", function() v.s = "x" end)
end)

T.test("a mutex field is a mutex object, a sem field a semaphore", function()
  local seg <close> = assert(shm.memfd("layout_sync", {size = 4096}))
  local S = shm.layout{ {"lock", "mutex"}, {"sem", "sem"}, {"locks", "mutex", 2} }
  local v = S:view(seg)
  local m = v.lock
  T.ok(tostring(m):find("shmhost.mutex", 1, true), tostring(m))
  T.ok(tostring(v.sem):find("shmhost.sem", 1, true), tostring(v.sem))
  T.ok(tostring(v.locks[2]):find("shmhost.mutex", 1, true))
  T.checkerr("field 'lock': a mutex cannot be assigned", function() v.lock = 1 end)
  -- They work on the struct's own memory: a lock through one view is seen through another.
  assert(m:init())
  T.eq(m:lock(), true)
  local busy_ok, why = S:view(seg).lock:trylock()
  T.eq(busy_ok, false); T.eq(why, "busy")
  assert(m:unlock())
  assert(v.sem:init(2))
  T.eq(S:view(seg).sem:value(), 2)
end)

T.test("another process sees what a view wrote", function()
  local name = T.name("layout_peer")
  local seg <close> = assert(shm.open(name, {create = true, excl = true, size = Day56.size}))
  local d = Day56:view(seg)
  d.counter = 41
  d.message = "hello from the parent"
  local code = [[
    local shm = require "shmhost"
    local Day56 = shm.layout{ {"lock", "mutex"}, {"activation", "bool"}, {"counter", "int"},
                              {"message", "char[256]"} }
    local seg = assert(shm.open(arg[1]))
    local d = Day56:view(seg)
    io.write(d.counter, " ", d.message, "\n")
    d.counter = d.counter + 1
    d.message = "hello from the child"
    d.activation = true
  ]]
  local r = T.shmhost{"-e", code, name, timeout = 20}
  T.eq(r.code, 0, r.stderr)
  T.eq(r.stdout, "41 hello from the parent\n")
  T.eq(d.counter, 42)
  T.eq(d.message, "hello from the child")
  T.eq(d.activation, true)
end)

T.test("field access is fast enough for hot loops", function()
  local seg <close> = assert(shm.memfd("layout_speed", {size = 4096}))
  local d = Day56:view(seg)
  d.counter = 0
  local n = 200000
  local t0 = shm.now()
  for _ = 1, n do d.counter = d.counter + 1 end
  local dt = shm.now() - t0
  T.eq(d.counter, n)
  io.stdout:write(string.format("     %d read-modify-writes in %.3f s (%.0f ns each)\n", n, dt,
                                dt / n * 1e9))
  T.ok(dt < 10, "200000 increments took " .. dt .. " s")
end)

T.done()
