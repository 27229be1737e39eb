-- A C struct shared with a C program: the layout's C declaration (cdecl), a C peer built from it, and both sides reading each other's writes
--
-- usage: shmhost c_struct_peer [--print]
--
-- A script and a C program share a segment byte for byte when both use the same struct. Here
-- the struct is declared once, in Lua, with shm.layout; L:cdecl("telemetry") turns it into
-- the C declaration (with the #include lines it needs), which goes into the C program below.
-- With --print the script only prints that C program. Otherwise it also compiles it with the
-- system C compiler (cc), fills a POSIX segment from Lua, runs the C program on it (it
-- prints what it sees and the offsets its compiler chose, then updates some fields under
-- the process-shared mutex), and checks both directions.
local shm = require "shmhost"
local uv = require "luv"
local E = require "exercise"

local Vec3 = shm.layout{ {"x", "float"}, {"y", "float"}, {"z", "float"} }
local Telemetry = shm.layout{
  {"lock", "mutex"},          -- pthread_mutex_t, process-shared and robust
  {"seq", "uint64_t"},
  {"readings", "double[8]"},
  {"pos", Vec3},              -- a nested struct
  {"name", "char[32]"},       -- a C string: at most 31 bytes and a NUL
  {"updates", "int"},
}

local FIELDS = {"lock", "seq", "readings", "pos", "pos.x", "pos.z", "name", "updates"}

-- The C peer: the declaration from cdecl, then a program that maps the segment by name.
local function c_program()
  local offsets = {}
  for _, f in ipairs(FIELDS) do
    offsets[#offsets + 1] = ('  printf("offset %s %%zu\\n", offsetof(struct telemetry, %s));'):format(f, f)
  end
  return table.concat({
    "/* telemetry_peer.c: the C side of shmhost's examples/c_struct_peer.lua.",
    " * Build: cc -Wall -o telemetry_peer telemetry_peer.c -pthread; run: ./telemetry_peer /NAME */",
    "#include <errno.h>",
    "#include <fcntl.h>",
    "#include <stddef.h>",
    "#include <stdio.h>",
    "#include <string.h>",
    "#include <sys/mman.h>",
    "#include <unistd.h>",
    Telemetry:cdecl("telemetry"),
    "int main(int argc, char **argv) {",
    '  if (argc != 2) { fprintf(stderr, "usage: %s /NAME\\n", argv[0]); return 2; }',
    "  int fd = shm_open(argv[1], O_RDWR, 0);",
    '  if (fd == -1) { perror("shm_open"); return 1; }',
    "  struct telemetry *t = mmap(NULL, sizeof *t, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);",
    '  if (t == MAP_FAILED) { perror("mmap"); return 1; }',
    "  close(fd);",
    '  printf("sizeof %zu\\n", sizeof(struct telemetry));',
    table.concat(offsets, "\n"),
    "  /* A robust mutex whose holder died is ours with EOWNERDEAD: mark it consistent. */",
    "  int rc = pthread_mutex_lock(&t->lock);",
    "  if (rc == EOWNERDEAD) rc = pthread_mutex_consistent(&t->lock);",
    '  if (rc != 0) { fprintf(stderr, "pthread_mutex_lock: %s\\n", strerror(rc)); return 1; }',
    '  printf("seen seq=%llu name=%s pos=%g,%g,%g readings=%g,%g,%g updates=%d\\n",',
    "         (unsigned long long)t->seq, t->name, t->pos.x, t->pos.y, t->pos.z,",
    "         t->readings[0], t->readings[1], t->readings[2], t->updates);",
    "  t->updates += 1;",
    "  t->readings[7] = t->readings[0] + t->readings[1];",
    '  snprintf(t->name, sizeof t->name, "set by C pid %d", (int)getpid());',
    "  pthread_mutex_unlock(&t->lock);",
    "  munmap(t, sizeof *t);",
    "  return 0;",
    "}",
    "",
  }, "\n")
end

if arg[1] == "--print" then
  io.write(c_program())
  os.exit(0)
elseif arg[1] ~= nil then
  io.stderr:write("usage: shmhost c_struct_peer [--print]\n")
  os.exit(2)
end

E.run(function()
  print("The struct, declared in Lua, as C sees it (Telemetry:cdecl):")
  io.write(Telemetry:cdecl("telemetry"))
  print(("sizeof %d, alignment %d"):format(Telemetry.size, Telemetry.align))

  -- Compile the C peer, if this machine has a compiler.
  local dir = assert(uv.fs_mkdtemp("/tmp/" .. E.tag .. "_cpeer_XXXXXX"))
  E.on_exit(function()
    for _, f in ipairs{"telemetry_peer.c", "telemetry_peer"} do os.remove(dir .. "/" .. f) end
    uv.fs_rmdir(dir)
  end)
  E.write_file(dir .. "/telemetry_peer.c", c_program())
  local ok, cc = pcall(E.start, {"cc", "-Wall", "-Wextra", "-o", dir .. "/telemetry_peer",
                                 dir .. "/telemetry_peer.c", "-pthread", timeout = 60})
  if not ok then
    print("no C compiler (cc) here: `shmhost c_struct_peer --print` shows the C program to build elsewhere")
    return "the C declaration is above (no compiler to run the C side)"
  end
  cc:wait()
  assert(cc.code == 0, "cc failed:\n" .. cc.stderr)
  E.check(cc.stderr == "", "the C program compiles without warnings: " .. cc.stderr)

  -- Fill the segment from Lua.
  local name = E.name("telemetry")
  local seg <close> = assert(shm.open(name, {create = true, excl = true, size = Telemetry.size}))
  local t = Telemetry:view(seg)
  assert(t.lock:init())
  t.seq = (1 << 40) + 3
  t.readings = {1.5, 2.25, -8}
  t.pos = {x = 1, y = 2.5, z = -3}
  t.name = "set by Lua"
  t.updates = 41

  -- The C program reads it, reports its compiler's offsets, and writes back.
  local c = E.start{dir .. "/telemetry_peer", name, timeout = 20}:wait()
  if not E.check(c.code == 0, "the C peer ran (" .. c:status() .. ")") then E.show(c) end
  print("\nThe C program says:")
  for line in c.stdout:gmatch("[^\n]+") do print("  " .. line) end
  E.check(tonumber(c.stdout:match("sizeof (%d+)")) == Telemetry.size, "sizeof agrees")
  for _, f in ipairs(FIELDS) do
    local off = tonumber(c.stdout:match("offset " .. f:gsub("%.", "%%.") .. " (%d+)"))
    E.check(off == Telemetry:offset(f), ("offset of %s: C %s, layout %d"):format(f, tostring(off), Telemetry:offset(f)))
  end
  E.check(c.stdout:find("seen seq=1099511627779 name=set by Lua pos=1,2.5,-3 readings=1.5,2.25,-8 updates=41", 1, true),
          "C read every field Lua wrote")

  print("\nLua reads back what C wrote:")
  print(("  updates=%d readings[8]=%g name=%s"):format(t.updates, t.readings[8], t.name))
  E.check(t.updates == 42 and t.readings[8] == 3.75 and t.name == "set by C pid " .. c.pid,
          "Lua read every field C wrote")
  -- The mutex is usable from both sides: C locked and unlocked it, Lua takes it now.
  E.check(t.lock:trylock() == true, "the mutex C used is free for Lua")
  t.lock:unlock()
  return "Lua and C agree on every offset and see each other's writes"
end)
