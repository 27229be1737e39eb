#!/usr/bin/env bash
# Layouts against the C compiler. A script declares a dozen layouts that cover every type,
# arrays, strings, nested layouts and padding corner cases, and prints each field's offset and
# each struct's size and alignment. A C program built from the layouts' own cdecl() output, and
# one built from declarations written here by hand, print offsetof/sizeof/_Alignof of the same
# structs; all three listings must be equal line for line.
set -u
SHMHOST=${SHMHOST:-$(dirname "$0")/../../build/shmhost}
if ! command -v gcc >/dev/null 2>&1; then
  echo "SKIP: gcc is not installed, so layouts cannot be compared with the C compiler"
  exit 77
fi
dir=$(mktemp -d /tmp/shmh_layout_gcc.XXXXXX)
shmname="/shmh_lgcc_$$"
trap 'rm -rf "$dir"; rm -f "/dev/shm$shmname"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# Hand-written C declarations of the same structs (struct h_NAME), as a C programmer would.
cat > "$dir/hand.h" <<'EOF'
#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct h_day56 { pthread_mutex_t lock; bool activation; int counter; char message[256]; };
struct h_sensor { int sensor_id; double value; char status[16]; };
struct h_allints {
  char c; signed char sc; unsigned char uc; int8_t i8; uint8_t u8; int16_t i16; uint16_t u16;
  int32_t i32; uint32_t u32; int64_t i64; uint64_t u64; short s; unsigned short us; int i;
  unsigned u; long l; unsigned long ul; long long ll; unsigned long long ull; size_t sz;
  ssize_t ssz; pid_t pid; char last;
};
struct h_floats { char a; float f; char b; double d; char c; };
struct h_short { int8_t a; uint64_t b; int16_t c; uint32_t d; float e; double f; uint8_t g; int64_t h; };
struct h_sync { char tag; sem_t s; pthread_mutex_t m; bool flag; sem_t sems[2]; pthread_mutex_t locks[3]; };
struct h_arrays { uint8_t bytes[3]; int32_t ints[5]; char tail; double ds[2]; uint16_t ws[7]; bool bs[3]; };
struct vec3 { float x, y, z; };
struct h_outer { uint8_t tag; struct vec3 pos; uint16_t n; struct vec3 pts[4]; char names[2][5]; };
struct inner { char c; long long x; };
struct mid { char a; struct inner in; short s; };
struct h_deep { bool b; struct mid m[2]; char z; };
struct h_tailpad { long long a; char b; };
struct h_bytes { char a; char b; char c; };
struct h_one { char c; };
struct h_strings { char a[1]; char b[7]; int x; char c[3][9]; short y; };
struct h_mixed { bool on; unsigned long long big; char tag[3]; float f[3]; struct h_tailpad tp; pid_t who; };
EOF

# The layouts, their listing, their cdecl() output and the probe of both declarations.
cat > "$dir/gen.lua" <<'EOF'
local shm = require "shmhost"
local dir = arg[1]
local Vec3 = shm.layout{ {"x", "float"}, {"y", "float"}, {"z", "f32"} }
local Inner = shm.layout{ {"c", "char"}, {"x", "long long"} }
local Mid = shm.layout{ {"a", "char"}, {"in", Inner}, {"s", "short"} }
local Tailpad = shm.layout{ {"a", "long long"}, {"b", "char"} }
local structs = {
  {"day56", { {"lock", "mutex"}, {"activation", "bool"}, {"counter", "int"}, {"message", "char[256]"} }},
  {"sensor", { {"sensor_id", "int"}, {"value", "double"}, {"status", "char[16]"} }},
  {"allints", { {"c", "char"}, {"sc", "signed char"}, {"uc", "unsigned char"}, {"i8", "int8_t"},
    {"u8", "uint8_t"}, {"i16", "int16_t"}, {"u16", "uint16_t"}, {"i32", "int32_t"},
    {"u32", "uint32_t"}, {"i64", "int64_t"}, {"u64", "uint64_t"}, {"s", "short"},
    {"us", "unsigned short"}, {"i", "int"}, {"u", "unsigned"}, {"l", "long"},
    {"ul", "unsigned long"}, {"ll", "long long"}, {"ull", "unsigned long long"},
    {"sz", "size_t"}, {"ssz", "ssize_t"}, {"pid", "pid_t"}, {"last", "char"} }},
  {"floats", { {"a", "char"}, {"f", "float"}, {"b", "char"}, {"d", "double"}, {"c", "char"} }},
  {"short", { {"a", "i8"}, {"b", "u64"}, {"c", "i16"}, {"d", "u32"}, {"e", "f32"}, {"f", "f64"},
    {"g", "u8"}, {"h", "i64"} }},
  {"sync", { {"tag", "char"}, {"s", "sem"}, {"m", "mutex"}, {"flag", "bool"}, {"sems", "sem[2]"},
    {"locks", "mutex", 3} }},
  {"arrays", { {"bytes", "u8[3]"}, {"ints", "int32_t[5]"}, {"tail", "char"}, {"ds", "double", 2},
    {"ws", "uint16_t[7]"}, {"bs", "bool[3]"} }},
  {"outer", { {"tag", "uint8_t"}, {"pos", Vec3}, {"n", "u16"}, {"pts", Vec3, 4},
    {"names", "char[5]", 2} }},
  {"deep", { {"b", "bool"}, {"m", Mid, 2}, {"z", "char"} }},
  {"tailpad", { {"a", "long long"}, {"b", "char"} }},
  {"bytes", { {"a", "char"}, {"b", "char"}, {"c", "char"} }},
  {"one", { {"c", "char"} }},
  {"strings", { {"a", "char[1]"}, {"b", "char[7]"}, {"x", "int"}, {"c", "char[9]", 3}, {"y", "short"} }},
  {"mixed", { {"on", "bool"}, {"big", "unsigned long long"}, {"tag", "char[3]"}, {"f", "float[3]"},
    {"tp", Tailpad}, {"who", "pid_t"} }},
}
-- Dotted paths into nested layouts are compared too.
local nested = { outer = {"pos.x", "pos.z"}, deep = {}, mixed = {"tp.b"} }

local listing, gen, probe = {}, {}, {}
probe[#probe + 1] = '#include <stdio.h>\n#include <stddef.h>\n#include "hand.h"\n#include "gen.h"\n'
probe[#probe + 1] = "int main(void) {"
for _, s in ipairs(structs) do
  local name, fields = s[1], s[2]
  local L = shm.layout(fields)
  gen[#gen + 1] = L:cdecl("g_" .. name)
  local paths = {}
  for _, f in ipairs(L:fields()) do paths[#paths + 1] = f.name end
  for _, p in ipairs(nested[name] or {}) do paths[#paths + 1] = p end
  for _, p in ipairs(paths) do
    listing[#listing + 1] = string.format("%s %s %d", name, p, L:offset(p))
  end
  listing[#listing + 1] = string.format("%s sizeof %d", name, L.size)
  listing[#listing + 1] = string.format("%s alignof %d", name, L.align)
  for _, side in ipairs{"g", "h"} do
    local t = string.format("struct %s_%s", side, name)
    for _, p in ipairs(paths) do
      probe[#probe + 1] = string.format('  printf("%s %s %s %%zu\\n", offsetof(%s, %s));',
        side, name, p, t, p)
    end
    probe[#probe + 1] = string.format('  printf("%s %s sizeof %%zu\\n", sizeof(%s));', side, name, t)
    probe[#probe + 1] = string.format('  printf("%s %s alignof %%zu\\n", _Alignof(%s));', side, name, t)
  end
end
probe[#probe + 1] = "  return 0;\n}"
local function save(file, text)
  local f = assert(io.open(dir .. "/" .. file, "w"))
  f:write(text, "\n")
  f:close()
end
save("listing.txt", table.concat(listing, "\n"))
save("gen.h", table.concat(gen, "\n"))
save("probe.c", table.concat(probe, "\n"))
print(#structs .. " layouts")
EOF

"$SHMHOST" "$dir/gen.lua" "$dir" || fail "the layout script failed"
n=$(grep -c 'sizeof' "$dir/listing.txt")
[ "$n" -ge 10 ] || fail "only $n structs compared"
gcc -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE -pthread -I"$dir" -o "$dir/probe" "$dir/probe.c" \
  || { cat "$dir/gen.h" >&2; fail "gcc rejected the declarations"; }
"$dir/probe" > "$dir/probe.txt" || fail "the probe failed"
for side in g h; do
  label=$([ $side = g ] && echo "cdecl() output" || echo "hand-written declarations")
  if ! diff <(sed -n "s/^$side //p" "$dir/probe.txt") "$dir/listing.txt" >&2; then
    fail "offsets differ between the layouts (right) and gcc on the $label (left)"
  fi
done
echo "ok: $n layouts, $(wc -l < "$dir/listing.txt") offsets, sizes and alignments equal in gcc (cdecl and hand-written)"

# ---- A C program and a script share one segment through the same layout, byte for byte:
# the C side compiles the struct cdecl() printed, fills it, and checks what the script wrote.
cat > "$dir/peer.lua" <<'EOF'
local shm = require "shmhost"
local Vec3 = shm.layout{ {"x", "float"}, {"y", "float"}, {"z", "float"} }
local Shared = shm.layout{ {"lock", "mutex"}, {"flag", "bool"}, {"id", "int"}, {"value", "double"},
  {"status", "char[16]"}, {"big", "u64"}, {"neg", "i16"}, {"pos", Vec3}, {"samples", "i32[4]"},
  {"who", "pid_t"}, {"names", "char[6]", 2} }
if arg[1] == "cdecl" then io.write(Shared:cdecl("shared")) return end
local seg = assert(shm.open(arg[2]))
local d = Shared:view(seg)
print(string.format("id=%d value=%.14g status=%s big=%d neg=%d pos=%g,%g,%g samples=%d,%d,%d,%d flag=%s who=%d names=%s,%s",
  d.id, d.value, d.status, d.big, d.neg, d.pos.x, d.pos.y, d.pos.z, d.samples[1], d.samples[2],
  d.samples[3], d.samples[4], tostring(d.flag), d.who, d.names[1], d.names[2]))
assert(d.lock:lock())
d.id = 202
d.status = "changed"
d.samples[4] = 44
d.pos.z = 9.25
d.flag = false
d.big = 1 << 40
d.names = {"lua", "side"}
assert(d.lock:unlock())
seg:close()
EOF
"$SHMHOST" "$dir/peer.lua" cdecl > "$dir/shared.h" || fail "cdecl of the shared layout"
cat > "$dir/cpeer.c" <<'EOF'
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "shared.h"
#define EXPECT(c) do { if (!(c)) { fprintf(stderr, "cpeer: check failed: %s\n", #c); return 1; } } while (0)
int main(int argc, char **argv) {
  if (argc != 3) return 2;
  int create = strcmp(argv[1], "fill") == 0;
  int fd = shm_open(argv[2], create ? O_RDWR | O_CREAT | O_EXCL : O_RDWR, 0600);
  if (fd < 0) { perror("shm_open"); return 1; }
  if (create && ftruncate(fd, sizeof(struct shared)) < 0) { perror("ftruncate"); return 1; }
  struct shared *s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (s == MAP_FAILED) { perror("mmap"); return 1; }
  if (create) {
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&s->lock, &a);
    s->flag = true; s->id = 101; s->value = 98.6; strcpy(s->status, "OK");
    s->big = UINT64_MAX; s->neg = -300; s->pos.x = 1.5f; s->pos.y = 2.5f; s->pos.z = -3.5f;
    s->samples[0] = 1; s->samples[1] = -2; s->samples[2] = 3; s->samples[3] = -4;
    s->who = getpid(); strcpy(s->names[0], "c"); strcpy(s->names[1], "peer");
    return 0;
  }
  EXPECT(pthread_mutex_lock(&s->lock) == 0);
  EXPECT(s->id == 202 && strcmp(s->status, "changed") == 0 && s->samples[3] == 44);
  EXPECT(s->samples[0] == 1 && s->pos.z == 9.25f && s->pos.x == 1.5f && !s->flag);
  EXPECT(s->big == ((uint64_t)1 << 40) && s->neg == -300 && s->value == 98.6);
  EXPECT(strcmp(s->names[0], "lua") == 0 && strcmp(s->names[1], "side") == 0);
  EXPECT(memcmp(s->status + 7, "\0\0\0\0\0\0\0\0\0", 9) == 0);
  EXPECT(pthread_mutex_unlock(&s->lock) == 0);
  shm_unlink(argv[2]);
  return 0;
}
EOF
gcc -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE -pthread -I"$dir" -o "$dir/cpeer" "$dir/cpeer.c" -lrt \
  || { cat "$dir/shared.h" >&2; fail "gcc rejected the C peer"; }
"$dir/cpeer" fill "$shmname" || fail "the C peer could not fill the segment"
out=$(timeout 20 "$SHMHOST" "$dir/peer.lua" peer "$shmname") || fail "the script could not read the C peer's struct"
cpid=$(sed -n 's/.* who=\([0-9]*\) .*/\1/p' <<< "$out")
want="id=101 value=98.6 status=OK big=-1 neg=-300 pos=1.5,2.5,-3.5 samples=1,-2,3,-4 flag=true who=$cpid names=c,peer"
[ "$out" = "$want" ] || fail "the script read the C struct as
  $out
expected
  $want"
"$dir/cpeer" check "$shmname" || fail "the C peer does not see what the script wrote"
echo "ok: a C program and a script share struct shared (from cdecl) byte for byte"
