/*
 * shmhost.segment: one Lua type for POSIX, System V and memfd shared memory, over the core in
 * host/core/seg.c. Offsets are 0-based byte offsets from the start of the segment; every access
 * is bounds-checked here, and every access is followed by a look at the SIGBUS guard's `broken`
 * flag, so a peer that truncates the object gives a Lua error instead of a dead process.
 */
#include "bind.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ipc.h>
#include <unistd.h>

#include "cleanup.h"
#include "seg.h"

typedef struct {
  shmh_seg seg;             /* first, so a shmh_seg * converts back to the userdata */
  enum shmh_seg_kind kind;  /* the kind it had, still known after close */
  int cleanup;              /* handle in the cleanup registry, 0 when none */
  int kept;
  int shmid;
  key_t key;
  struct shmh_futex_waiter *futex; /* threads of seg:futex_wait (futex.c), NULL when none */
} segment_ud;

static const char *const kind_names[] = {"closed", "posix", "sysv", "memfd"};

/* ------------------------------------------------------------ helpers */

/* How messages name the segment: "/x", "memfd:x", "id 42". */
static const char *segment_label(lua_State *L, const segment_ud *u) {
  if (u->kind == SHMH_SEG_SYSV) return lua_pushfstring(L, "id %d", u->shmid);
  if (u->kind == SHMH_SEG_MEMFD) return lua_pushfstring(L, "memfd:%s", u->seg.name);
  return lua_pushstring(L, u->seg.name[0] ? u->seg.name : "(unnamed)");
}

static int segment_is_open(const segment_ud *u) { return u->seg.kind != SHMH_SEG_NONE; }

/* Creates the userdata in the closed state, before any OS resource exists, so that a failure
 * at any later step leaves nothing for __gc but a closed object. */
static segment_ud *segment_new(lua_State *L) {
  segment_ud *u = lua_newuserdatauv(L, sizeof *u, 0);
  memset(u, 0, sizeof *u);
  shmh_seg_init(&u->seg);
  u->shmid = -1;
  luaL_setmetatable(L, SHMH_SEGMENT);
  return u;
}

static void segment_adopted(segment_ud *u) {
  u->kind = u->seg.kind;
  u->shmid = u->seg.shmid;
  u->key = u->seg.key;
}

static segment_ud *segment_open_at(lua_State *L, int idx) {
  segment_ud *u = luaL_checkudata(L, idx, SHMH_SEGMENT);
  if (!segment_is_open(u))
    luaL_argerror(L, idx, lua_pushfstring(L, "segment %s is closed", segment_label(L, u)));
  return u;
}

static int segment_raise_broken(lua_State *L, segment_ud *u) {
  return luaL_error(L, "segment %s was truncated by a peer", segment_label(L, u));
}

/* The one check every access goes through: open, not broken, inside, writable. `arg` names the
 * offset argument in errors (0: no argument, a plain error). */
static char *segment_at(lua_State *L, segment_ud *u, lua_Integer off, size_t len, int write,
                        int arg) {
  const char *msg = NULL;
  if (!segment_is_open(u)) msg = lua_pushfstring(L, "segment %s is closed", segment_label(L, u));
  else if (u->seg.broken) segment_raise_broken(L, u);
  else if (off < 0 || !shmh_seg_in_bounds(&u->seg, (uint64_t)off, len))
    msg = lua_pushfstring(L, "offset %I + length %I is outside segment %s (%I bytes)", off,
                          (lua_Integer)len, segment_label(L, u), (lua_Integer)u->seg.size);
  else if (write && u->seg.readonly)
    msg = lua_pushfstring(L, "segment %s is mapped read-only", segment_label(L, u));
  if (msg != NULL) {
    if (arg > 0) luaL_argerror(L, arg, msg);
    lua_error(L);
  }
  /* A segment of size 0 has no mapping; an empty access there touches nothing. */
  static char empty;
  return u->seg.addr ? (char *)u->seg.addr + off : &empty;
}

static void segment_after(lua_State *L, segment_ud *u) {
  if (u->seg.broken) segment_raise_broken(L, u);
}

/* Unmaps and closes; with `remove`, a created object that was not kept is removed too. Never
 * raises: it serves __gc. */
static void segment_release(segment_ud *u, int remove) {
  /* Waiting threads go first (close() and detach() have resumed their tasks already; a task
   * waiting on the segment holds it on its stack, so __gc comes only at lua_close, when no
   * task resumes). */
  shmh_futex_shut(&u->futex, 0);
  if (u->cleanup > 0) {
    if (remove && !u->kept) shmh_cleanup_remove(u->cleanup);
    /* Otherwise the entry stays in the registry and the object is removed at exit; this
     * object forgets it either way, so a close() after detach() removes nothing. */
    u->cleanup = 0;
  }
  shmh_seg_close(&u->seg);
}

static size_t check_size(lua_State *L, lua_Integer n, int arg, const char *what) {
  if (n < 0 || (uint64_t)n > (uint64_t)SIZE_MAX / 2)
    luaL_argerror(L, arg, lua_pushfstring(L, "%s %I is not a valid size", what, n));
  return (size_t)n;
}

/* Registers a created object for removal at exit (unless kept). On failure the object is
 * removed at once and the error is returned as nil, message, errno. */
static int segment_register(lua_State *L, segment_ud *u, int keep) {
  u->kept = keep;
  if (!u->seg.created || keep || u->kind == SHMH_SEG_MEMFD) return 0;
  int h = u->kind == SHMH_SEG_SYSV
              ? shmh_cleanup_add(SHMH_CLEANUP_SYSV_SHM, NULL, u->shmid)
              : shmh_cleanup_add(SHMH_CLEANUP_POSIX_SHM, u->seg.name, 0);
  if (h < 0) {
    const char *label = segment_label(L, u);
    shmh_seg_unlink(&u->seg);
    shmh_seg_close(&u->seg);
    return shmh_fail(L, -h, "cleanup", label);
  }
  u->cleanup = h;
  return 0;
}

/* ------------------------------------------------------------ constructors */

static void check_posix_name(lua_State *L, int arg, const char *name, size_t len) {
  const char *why = NULL;
  if (len < 2 || name[0] != '/') why = "must start with '/' followed by a name";
  else if (strlen(name) != len) why = "must not contain a NUL byte";
  else if (strchr(name + 1, '/') != NULL) why = "must not contain '/' after the first";
  else if (len - 1 > NAME_MAX) why = "is longer than NAME_MAX";
  if (why) luaL_argerror(L, arg, lua_pushfstring(L, "POSIX name \"%s\" %s", name, why));
}

/* The size option: required and positive when creating (misuse raises), else ignored. */
static size_t opt_size(lua_State *L, int t, int required) {
  lua_Integer n = shmh_opt_integer(L, t, "size", -1);
  if (n == -1 && !required) return 0;
  if (n <= 0 || (uint64_t)n > (uint64_t)SIZE_MAX / 2)
    luaL_argerror(L, t, n == -1 ? "option 'size' is required when creating"
                                : lua_pushfstring(L, "option 'size' must be positive, got %I", n));
  return (size_t)n;
}

/* shm.open(name, {create = true, size = N, init = fn}): opens the object when it exists;
 * otherwise creates it under a temporary name, runs init(seg) on it, and publishes it under
 * `name` only then (shmh_seg_publish). Two processes racing get one object, initialized once,
 * and neither ever sees it before its init ran (a mutex inside it is initialized, say). */
static int segment_open_init(lua_State *L, const char *name, struct shmh_seg_opts *o, int keep) {
  for (int attempt = 0; attempt < 100; attempt++) {
    struct shmh_seg_opts plain = *o;
    plain.create = 0;
    segment_ud *u = segment_new(L);
    int rc = shmh_seg_open_posix(&u->seg, name, &plain);
    if (rc == 0 && u->seg.size < o->size) {
      shmh_seg_close(&u->seg);
      return shmh_fail(L, EINVAL, "shm_open", name);
    }
    if (rc == 0) {
      segment_adopted(u);
      return 1;
    }
    if (rc != -ENOENT) return shmh_fail(L, -rc, u->seg.fail_call, name);
    lua_pop(L, 1);

    /* The temporary name does not carry `name`, so a name near NAME_MAX still works. */
    const char *tmp = lua_pushfstring(L, "/shmhost.init.%d.%d", (int)getpid(), attempt);
    struct shmh_seg_opts fresh = *o;
    fresh.excl = 1;
    u = segment_new(L);
    rc = shmh_seg_open_posix(&u->seg, tmp, &fresh);
    if (rc < 0) return shmh_fail(L, -rc, u->seg.fail_call, tmp);
    segment_adopted(u);
    /* Until it is published the object is only ours: removed at exit if init never ends. */
    if ((rc = segment_register(L, u, 0)) != 0) return rc;
    lua_getfield(L, 2, "init");
    lua_pushvalue(L, -2);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
      segment_release(u, 1);
      return lua_error(L);
    }
    if (!segment_is_open(u))
      return luaL_error(L, "shm.open %s: init closed the segment", name);
    rc = shmh_seg_publish(&u->seg, name);
    shmh_cleanup_forget(u->cleanup);
    u->cleanup = 0;
    if (rc == 0) {
      if ((rc = segment_register(L, u, keep)) != 0) return rc;
      return 1;
    }
    /* Another process published first: drop ours and open theirs. */
    shmh_seg_unlink(&u->seg);
    shmh_seg_close(&u->seg);
    if (rc != -EEXIST) return shmh_fail(L, -rc, "link", name);
    lua_pop(L, 2);
  }
  return shmh_fail(L, EAGAIN, "shm_open", name);
}

static int segment_open(lua_State *L) {
  static const char *const known[] = {"create", "excl", "size", "mode", "truncate",
                                      "readonly", "keep", "init", NULL};
  size_t len;
  const char *name = luaL_checklstring(L, 1, &len);
  check_posix_name(L, 1, name, len);
  shmh_check_options(L, 2, known);
  struct shmh_seg_opts o = {0};
  o.create = shmh_opt_bool(L, 2, "create", 0);
  o.excl = shmh_opt_bool(L, 2, "excl", 0);
  o.truncate = shmh_opt_bool(L, 2, "truncate", 0);
  o.readonly = shmh_opt_bool(L, 2, "readonly", 0);
  o.mode = shmh_opt_mode(L, 2, "mode", 0600);
  int keep = shmh_opt_bool(L, 2, "keep", 0);
  o.size = opt_size(L, 2, o.create || o.truncate);
  luaL_argcheck(L, !o.excl || o.create, 2, "option 'excl' needs create = true");
  luaL_argcheck(L, !(o.truncate && o.readonly), 2, "options 'truncate' and 'readonly' conflict");
  if (!lua_isnoneornil(L, 2) && lua_getfield(L, 2, "init") != LUA_TNIL) {
    luaL_argcheck(L, lua_isfunction(L, -1), 2, "option 'init' must be a function");
    luaL_argcheck(L, o.create && !o.excl && !o.truncate && !o.readonly, 2,
                  "option 'init' needs create = true, without excl, truncate or readonly");
    lua_pop(L, 1);
    return segment_open_init(L, name, &o, keep);
  }
  segment_ud *u = segment_new(L);
  int rc = shmh_seg_open_posix(&u->seg, name, &o);
  if (rc < 0) return shmh_fail(L, -rc, u->seg.fail_call, name);
  segment_adopted(u);
  rc = segment_register(L, u, keep);
  return rc ? rc : 1;
}

static key_t check_key(lua_State *L, int arg) {
  lua_Integer k = luaL_checkinteger(L, arg);
  /* ftok keys are ints that may be negative; ipcs shows them as 32-bit hex. */
  luaL_argcheck(L, k >= INT32_MIN && k <= (lua_Integer)UINT32_MAX, arg,
                "key must fit in 32 bits");
  return (key_t)(int32_t)(uint32_t)k;
}

static int segment_sysv(lua_State *L) {
  static const char *const known[] = {"create", "excl", "size", "mode", "readonly", "keep",
                                      NULL};
  key_t key = check_key(L, 1);
  shmh_check_options(L, 2, known);
  struct shmh_seg_opts o = {0};
  o.create = shmh_opt_bool(L, 2, "create", 0);
  o.excl = shmh_opt_bool(L, 2, "excl", 0);
  o.readonly = shmh_opt_bool(L, 2, "readonly", 0);
  o.mode = shmh_opt_mode(L, 2, "mode", 0600);
  int keep = shmh_opt_bool(L, 2, "keep", 0);
  o.size = opt_size(L, 2, o.create || key == IPC_PRIVATE);
  luaL_argcheck(L, !o.excl || o.create, 2, "option 'excl' needs create = true");
  segment_ud *u = segment_new(L);
  int rc = shmh_seg_open_sysv(&u->seg, key, &o);
  if (rc < 0) {
    char hex[16];
    snprintf(hex, sizeof hex, "0x%08x", (unsigned)key); /* as ipcs shows keys */
    const char *obj = key == IPC_PRIVATE ? "IPC_PRIVATE" : hex;
    if (strcmp(u->seg.fail_call, "shmget") != 0 && u->seg.shmid >= 0)
      obj = lua_pushfstring(L, "%d", u->seg.shmid);
    return shmh_fail(L, -rc, u->seg.fail_call, obj);
  }
  segment_adopted(u);
  rc = segment_register(L, u, keep);
  return rc ? rc : 1;
}

static int segment_sysv_attach(lua_State *L) {
  static const char *const known[] = {"readonly", NULL};
  lua_Integer id = luaL_checkinteger(L, 1);
  luaL_argcheck(L, id >= 0 && id <= INT_MAX, 1, "System V id must be a non-negative int");
  shmh_check_options(L, 2, known);
  int readonly = shmh_opt_bool(L, 2, "readonly", 0);
  segment_ud *u = segment_new(L);
  int rc = shmh_seg_attach_sysv(&u->seg, (int)id, readonly);
  if (rc < 0) return shmh_fail(L, -rc, u->seg.fail_call, lua_pushfstring(L, "%I", id));
  segment_adopted(u);
  return 1;
}

static int segment_memfd(lua_State *L) {
  static const char *const known[] = {"size", "seal", "mode", NULL};
  size_t len;
  const char *name = luaL_checklstring(L, 1, &len);
  /* memfd_create takes at most 249 bytes of name (255 minus "memfd:"). */
  luaL_argcheck(L, len <= 249 && strlen(name) == len, 1,
                "memfd name must be at most 249 bytes without NUL");
  shmh_check_options(L, 2, known);
  struct shmh_seg_opts o = {0};
  o.size = opt_size(L, 2, 1);
  o.seal = shmh_opt_bool(L, 2, "seal", 0);
  o.mode = shmh_opt_mode(L, 2, "mode", 0600);
  segment_ud *u = segment_new(L);
  int rc = shmh_seg_open_memfd(&u->seg, name, &o);
  if (rc < 0) return shmh_fail(L, -rc, u->seg.fail_call, name);
  segment_adopted(u);
  return 1;
}

static int segment_ftok(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int proj;
  if (lua_type(L, 2) == LUA_TSTRING) {
    size_t n;
    const char *s = lua_tolstring(L, 2, &n);
    luaL_argcheck(L, n == 1 && s[0] != '\0', 2, "project must be one character");
    proj = (unsigned char)s[0];
  } else {
    lua_Integer p = luaL_checkinteger(L, 2);
    luaL_argcheck(L, p >= 1 && p <= 255, 2, "project must be an integer from 1 to 255");
    proj = (int)p;
  }
  key_t key;
  int rc = shmh_seg_ftok(path, proj, &key);
  if (rc < 0) return shmh_fail(L, -rc, "ftok", path);
  lua_pushinteger(L, key);
  return 1;
}

/* ------------------------------------------------------------ bytes */

static int segment_size(lua_State *L) {
  segment_ud *u = segment_open_at(L, 1);
  lua_pushinteger(L, (lua_Integer)u->seg.size);
  return 1;
}

static int segment_fd_method(lua_State *L) {
  segment_ud *u = segment_open_at(L, 1);
  if (u->seg.fd < 0) lua_pushnil(L); /* System V segments have no descriptor */
  else lua_pushinteger(L, u->seg.fd);
  return 1;
}

static int segment_read(lua_State *L) {
  segment_ud *u = segment_open_at(L, 1);
  lua_Integer off = luaL_optinteger(L, 2, 0);
  lua_Integer def = off >= 0 && (uint64_t)off <= u->seg.size ? (lua_Integer)u->seg.size - off : 0;
  size_t len = check_size(L, luaL_optinteger(L, 3, def), 3, "length");
  const char *p = segment_at(L, u, off, len, 0, 2);
  lua_pushlstring(L, p, len);
  segment_after(L, u);
  return 1;
}

static int segment_write(lua_State *L) {
  segment_ud *u = segment_open_at(L, 1);
  lua_Integer off = luaL_checkinteger(L, 2);
  size_t len;
  const char *s = luaL_checklstring(L, 3, &len);
  char *p = segment_at(L, u, off, len, 1, 2);
  memcpy(p, s, len);
  segment_after(L, u);
  lua_pushboolean(L, 1);
  return 1;
}

/* ------------------------------------------------------------ typed values */

enum { K_SIGNED, K_UNSIGNED, K_FLOAT, K_BOOL };

struct vtype {
  const char *name;
  int width;
  int kind;
};

static const struct vtype vtypes[] = {
  {"i8", 1, K_SIGNED},    {"i16", 2, K_SIGNED},   {"i32", 4, K_SIGNED},
  {"i64", 8, K_SIGNED},   {"u8", 1, K_UNSIGNED},  {"u16", 2, K_UNSIGNED},
  {"u32", 4, K_UNSIGNED}, {"u64", 8, K_UNSIGNED}, {"f32", 4, K_FLOAT},
  {"f64", 8, K_FLOAT},    {"bool", 1, K_BOOL},
  {"int8_t", 1, K_SIGNED},    {"int16_t", 2, K_SIGNED},   {"int32_t", 4, K_SIGNED},
  {"int64_t", 8, K_SIGNED},   {"uint8_t", 1, K_UNSIGNED}, {"uint16_t", 2, K_UNSIGNED},
  {"uint32_t", 4, K_UNSIGNED}, {"uint64_t", 8, K_UNSIGNED}, {"float", 4, K_FLOAT},
  {"double", 8, K_FLOAT},
};

static const struct vtype *check_vtype(lua_State *L, int arg) {
  const char *name = luaL_checkstring(L, arg);
  for (size_t i = 0; i < sizeof vtypes / sizeof vtypes[0]; i++)
    if (strcmp(vtypes[i].name, name) == 0) return &vtypes[i];
  luaL_argerror(L, arg,
                lua_pushfstring(L, "unknown type '%s' (i8..i64, u8..u64, f32, f64, bool)", name));
  return NULL;
}

/* Lua value at `arg` as the bits of type `t`, range-checked. `wrap` accepts the negative
 * counterpart of an unsigned width too (for add: u32 with -1 subtracts one). */
static uint64_t check_bits(lua_State *L, const struct vtype *t, int arg, int wrap) {
  if (t->kind == K_BOOL) {
    luaL_checktype(L, arg, LUA_TBOOLEAN);
    return (uint64_t)lua_toboolean(L, arg);
  }
  if (t->kind == K_FLOAT) {
    double d = luaL_checknumber(L, arg);
    if (t->width == 4) {
      float f = (float)d;
      uint32_t b;
      memcpy(&b, &f, 4);
      return b;
    }
    uint64_t b;
    memcpy(&b, &d, 8);
    return b;
  }
  lua_Integer v = luaL_checkinteger(L, arg);
  if (t->width < 8) {
    int bits = t->width * 8;
    lua_Integer lo = -((lua_Integer)1 << (bits - 1)), hi = ((lua_Integer)1 << (bits - 1)) - 1;
    if (t->kind == K_UNSIGNED || wrap) hi = ((lua_Integer)1 << bits) - 1;
    if (t->kind == K_UNSIGNED && !wrap) lo = 0;
    if (wrap) lo = -(((lua_Integer)1 << bits) - 1);
    if (v < lo || v > hi)
      luaL_argerror(L, arg, lua_pushfstring(L, "value %I out of range for %s", v, t->name));
  }
  return (uint64_t)v;
}

static void push_bits(lua_State *L, const struct vtype *t, uint64_t b) {
  switch (t->kind) {
  case K_BOOL: lua_pushboolean(L, b != 0); break;
  case K_FLOAT:
    if (t->width == 4) {
      uint32_t b32 = (uint32_t)b;
      float f;
      memcpy(&f, &b32, 4);
      lua_pushnumber(L, f);
    } else {
      double d;
      memcpy(&d, &b, 8);
      lua_pushnumber(L, d);
    }
    break;
  case K_SIGNED:
    switch (t->width) {
    case 1: lua_pushinteger(L, (int8_t)b); break;
    case 2: lua_pushinteger(L, (int16_t)b); break;
    case 4: lua_pushinteger(L, (int32_t)b); break;
    default: lua_pushinteger(L, (lua_Integer)b); break;
    }
    break;
  default: /* u64 values of 2^63 and above wrap, as string.unpack("J") gives them */
    lua_pushinteger(L, (lua_Integer)b);
    break;
  }
}

/* Plain (unaligned) loads and stores of one width, through typed temporaries so the byte order
 * is the machine's own, as a C program sharing the segment sees it. */
static uint64_t plain_load(const void *p, int width) {
  uint8_t a; uint16_t b; uint32_t c; uint64_t d;
  switch (width) {
  case 1: memcpy(&a, p, 1); return a;
  case 2: memcpy(&b, p, 2); return b;
  case 4: memcpy(&c, p, 4); return c;
  default: memcpy(&d, p, 8); return d;
  }
}

static void plain_store(void *p, int width, uint64_t v) {
  uint8_t a = (uint8_t)v; uint16_t b = (uint16_t)v; uint32_t c = (uint32_t)v;
  switch (width) {
  case 1: memcpy(p, &a, 1); break;
  case 2: memcpy(p, &b, 2); break;
  case 4: memcpy(p, &c, 4); break;
  default: memcpy(p, &v, 8); break;
  }
}

static int segment_get(lua_State *L) {
  segment_ud *u = segment_open_at(L, 1);
  const struct vtype *t = check_vtype(L, 2);
  const char *p = segment_at(L, u, luaL_checkinteger(L, 3), (size_t)t->width, 0, 3);
  uint64_t b = plain_load(p, t->width);
  segment_after(L, u);
  push_bits(L, t, b);
  return 1;
}

static int segment_set(lua_State *L) {
  segment_ud *u = segment_open_at(L, 1);
  const struct vtype *t = check_vtype(L, 2);
  lua_Integer off = luaL_checkinteger(L, 3);
  uint64_t b = check_bits(L, t, 4, 0);
  char *p = segment_at(L, u, off, (size_t)t->width, 1, 3);
  plain_store(p, t->width, b);
  segment_after(L, u);
  lua_pushboolean(L, 1);
  return 1;
}

enum { OP_LOAD, OP_STORE, OP_ADD, OP_CAS };

/* One sequentially consistent atomic operation on an aligned value of `width` bytes. For
 * OP_CAS, *ok reports success and the result is the value found. */
static uint64_t atomic_op(int op, void *p, int width, uint64_t a, uint64_t b, int *ok) {
#define SHMH_ATOMIC_CASE(T)                                                           \
  {                                                                                   \
    T *q = p, e = (T)a;                                                               \
    switch (op) {                                                                     \
    case OP_LOAD: return __atomic_load_n(q, __ATOMIC_SEQ_CST);                        \
    case OP_STORE: __atomic_store_n(q, (T)a, __ATOMIC_SEQ_CST); return 0;            \
    case OP_ADD: return __atomic_fetch_add(q, (T)a, __ATOMIC_SEQ_CST);                \
    default:                                                                          \
      *ok = __atomic_compare_exchange_n(q, &e, (T)b, 0, __ATOMIC_SEQ_CST,             \
                                        __ATOMIC_SEQ_CST);                            \
      return e;                                                                       \
    }                                                                                 \
  }
  switch (width) {
  case 1: SHMH_ATOMIC_CASE(uint8_t)
  case 2: SHMH_ATOMIC_CASE(uint16_t)
  case 4: SHMH_ATOMIC_CASE(uint32_t)
  default: SHMH_ATOMIC_CASE(uint64_t)
  }
#undef SHMH_ATOMIC_CASE
}

/* seg:load(type, off), seg:store(type, off, v), seg:add(type, off, n), seg:cas(type, off,
 * expect, new): the shared body. */
static int segment_atomic(lua_State *L, int op) {
  static const char *const opname[] = {"load", "store", "add", "cas"};
  segment_ud *u = segment_open_at(L, 1);
  const struct vtype *t = check_vtype(L, 2);
  if ((op == OP_ADD || op == OP_CAS) && t->kind != K_SIGNED && t->kind != K_UNSIGNED)
    luaL_argerror(L, 2, lua_pushfstring(L, "%s needs an integer type, got '%s'", opname[op],
                                        t->name));
  lua_Integer off = luaL_checkinteger(L, 3);
  uint64_t a = 0, b = 0;
  if (op == OP_STORE) a = check_bits(L, t, 4, 0);
  if (op == OP_ADD) a = check_bits(L, t, 4, 1);
  if (op == OP_CAS) {
    a = check_bits(L, t, 4, 0);
    b = check_bits(L, t, 5, 0);
  }
  char *p = segment_at(L, u, off, (size_t)t->width, op != OP_LOAD, 3);
  /* Atomic instructions need natural alignment; a misaligned one may tear or trap. */
  if ((uintptr_t)p % (uintptr_t)t->width != 0)
    luaL_argerror(L, 3, lua_pushfstring(L, "offset %I is not aligned to %d bytes for atomic %s",
                                        off, t->width, t->name));
  int ok = 0;
  uint64_t r = atomic_op(op, p, t->width, a, b, &ok);
  segment_after(L, u);
  switch (op) {
  case OP_STORE: lua_pushboolean(L, 1); return 1;
  case OP_CAS: lua_pushboolean(L, ok); push_bits(L, t, r); return 2;
  default: push_bits(L, t, r); return 1;
  }
}

static int segment_load(lua_State *L) { return segment_atomic(L, OP_LOAD); }
static int segment_store(lua_State *L) { return segment_atomic(L, OP_STORE); }
static int segment_add(lua_State *L) { return segment_atomic(L, OP_ADD); }
static int segment_cas(lua_State *L) { return segment_atomic(L, OP_CAS); }

/* ------------------------------------------------------------ the object */

static void set_int(lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

static int segment_stat(lua_State *L) {
  segment_ud *u = segment_open_at(L, 1);
  struct shmh_seg_stat st;
  int rc = shmh_seg_stat(&u->seg, &st);
  if (rc < 0)
    return shmh_fail(L, -rc, u->kind == SHMH_SEG_SYSV ? "shmctl" : "fstat", segment_label(L, u));
  lua_createtable(L, 0, 16);
  set_int(L, "size", (lua_Integer)st.size);
  set_int(L, "mode", st.mode);
  set_int(L, "uid", st.uid);
  set_int(L, "gid", st.gid);
  lua_pushboolean(L, st.removed);
  lua_setfield(L, -2, "removed");
  if (u->kind == SHMH_SEG_SYSV) {
    set_int(L, "cuid", st.cuid);
    set_int(L, "cgid", st.cgid);
    set_int(L, "nattch", (lua_Integer)st.nattch);
    set_int(L, "cpid", st.cpid);
    set_int(L, "lpid", st.lpid);
    set_int(L, "atime", st.atime);
    set_int(L, "dtime", st.dtime);
    set_int(L, "ctime", st.ctime);
    set_int(L, "key", st.key);
    set_int(L, "id", st.id);
  }
  return 1;
}

static int segment_resize(lua_State *L) {
  segment_ud *u = segment_open_at(L, 1);
  size_t n = check_size(L, luaL_checkinteger(L, 2), 2, "size");
  if (u->kind == SHMH_SEG_SYSV)
    return luaL_error(L, "segment %s: a System V segment cannot be resized", segment_label(L, u));
  if (u->seg.readonly)
    return luaL_error(L, "segment %s is mapped read-only", segment_label(L, u));
  if (u->seg.broken) return segment_raise_broken(L, u);
  int rc = shmh_seg_resize(&u->seg, n);
  if (rc < 0) return shmh_fail(L, -rc, u->seg.fail_call, segment_label(L, u));
  lua_pushboolean(L, 1);
  return 1;
}

static int segment_unlink(lua_State *L) {
  segment_ud *u = segment_open_at(L, 1);
  if (u->kind == SHMH_SEG_MEMFD)
    return luaL_error(L, "segment %s: a memfd has no name to remove", segment_label(L, u));
  int rc;
  if (u->cleanup > 0) {
    /* The registry removes it only if the name still belongs to our object. */
    rc = shmh_cleanup_remove(u->cleanup);
    u->cleanup = 0;
    u->seg.fail_call = u->kind == SHMH_SEG_SYSV ? "shmctl" : "shm_unlink";
  } else {
    rc = shmh_seg_unlink(&u->seg);
  }
  if (rc < 0) return shmh_fail(L, -rc, u->seg.fail_call, segment_label(L, u));
  lua_pushboolean(L, 1);
  return 1;
}

/* close() removes a created object that was not kept; detach() never removes. Both wake the
 * tasks waiting on a futex word with nil, "closed". */
static int segment_end(lua_State *L, int remove) {
  segment_ud *u = luaL_checkudata(L, 1, SHMH_SEGMENT);
  shmh_futex_shut(&u->futex, 1);
  segment_release(u, remove);
  lua_pushboolean(L, 1);
  return 1;
}

static int segment_detach(lua_State *L) { return segment_end(L, 0); }
static int segment_close(lua_State *L) { return segment_end(L, 1); }

static int segment_gc(lua_State *L) {
  segment_ud *u = luaL_checkudata(L, 1, SHMH_SEGMENT);
  segment_release(u, 0);
  return 0;
}

static int segment_keep(lua_State *L) {
  segment_ud *u = segment_open_at(L, 1);
  u->kept = 1;
  if (u->cleanup > 0) shmh_cleanup_forget(u->cleanup);
  u->cleanup = 0;
  lua_pushboolean(L, 1);
  return 1;
}

static int segment_tostring(lua_State *L) {
  segment_ud *u = luaL_checkudata(L, 1, SHMH_SEGMENT);
  if (!segment_is_open(u))
    lua_pushfstring(L, "%s (%s, closed)", SHMH_SEGMENT, kind_names[u->kind]);
  else
    lua_pushfstring(L, "%s (%s %s, %I bytes%s)", SHMH_SEGMENT, kind_names[u->kind],
                    segment_label(L, u), (lua_Integer)u->seg.size,
                    u->seg.readonly ? ", read-only" : "");
  return 1;
}

/* Methods first, then the fields name, kind, key, id, created, readonly. */
static int segment_index(lua_State *L) {
  segment_ud *u = luaL_checkudata(L, 1, SHMH_SEGMENT);
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL || lua_type(L, 2) != LUA_TSTRING) return 1;
  const char *k = lua_tostring(L, 2);
  if (strcmp(k, "name") == 0) {
    if (u->kind == SHMH_SEG_SYSV || u->seg.name[0] == '\0') lua_pushnil(L);
    else lua_pushstring(L, u->seg.name);
  } else if (strcmp(k, "kind") == 0) {
    lua_pushstring(L, kind_names[u->kind]);
  } else if (strcmp(k, "key") == 0 && u->kind == SHMH_SEG_SYSV) {
    lua_pushinteger(L, u->key);
  } else if (strcmp(k, "id") == 0 && u->kind == SHMH_SEG_SYSV) {
    lua_pushinteger(L, u->shmid);
  } else if (strcmp(k, "created") == 0) {
    lua_pushboolean(L, u->seg.created);
  } else if (strcmp(k, "readonly") == 0) {
    lua_pushboolean(L, u->seg.readonly);
  } else {
    lua_pushnil(L);
  }
  return 1;
}

/* ------------------------------------------------------------ the C API for other bindings */

shmh_seg *shmh_segment_check(lua_State *L, int idx) { return &segment_open_at(L, idx)->seg; }

void *shmh_segment_ptr(lua_State *L, int idx, lua_Integer off, size_t len, int write, int arg) {
  segment_ud *u = luaL_testudata(L, idx, SHMH_SEGMENT);
  if (u == NULL) {
    /* The value may sit at another stack slot than the argument it came from (a sub-object
     * pushes its segment), so the message names `arg` but describes the value at `idx`. */
    const char *msg = lua_pushfstring(L, "%s expected, got %s", SHMH_SEGMENT, luaL_typename(L, idx));
    if (arg > 0) luaL_argerror(L, arg, msg);
    lua_error(L);
  }
  return segment_at(L, u, off, len, write, arg);
}

struct shmh_futex_waiter **shmh_segment_futexes(lua_State *L, int idx) {
  return &segment_open_at(L, idx)->futex;
}

void shmh_segment_touched(lua_State *L, shmh_seg *seg) {
  if (seg->broken) segment_raise_broken(L, (segment_ud *)seg);
}

int shmh_segment_push_fd(lua_State *L, int fd) {
  segment_ud *u = segment_new(L);
  int rc = shmh_seg_adopt_fd(&u->seg, fd);
  if (rc < 0) {
    close(fd);
    return shmh_fail(L, -rc, u->seg.fail_call, lua_pushfstring(L, "fd %d", fd));
  }
  segment_adopted(u);
  return 1;
}

int shmh_segment_fd(lua_State *L, int idx) {
  segment_ud *u = segment_open_at(L, idx);
  return u->seg.fd;
}

void shmh_bind_segment(lua_State *L) {
  static const luaL_Reg methods[] = {
    {"size", segment_size},     {"fd", segment_fd_method}, {"read", segment_read},
    {"write", segment_write},   {"get", segment_get},      {"set", segment_set},
    {"load", segment_load},     {"store", segment_store},  {"add", segment_add},
    {"cas", segment_cas},       {"stat", segment_stat},    {"resize", segment_resize},
    {"unlink", segment_unlink}, {"remove", segment_unlink}, {"detach", segment_detach},
    {"close", segment_close},   {"keep", segment_keep},
    {"futex_wait", shmh_segment_futex_wait}, {"futex_wake", shmh_segment_futex_wake},
    {NULL, NULL}};
  static const luaL_Reg metamethods[] = {
    {"__gc", segment_gc}, {"__close", segment_close}, {"__tostring", segment_tostring},
    {NULL, NULL}};
  static const luaL_Reg functions[] = {
    {"open", segment_open}, {"sysv", segment_sysv}, {"sysv_attach", segment_sysv_attach},
    {"memfd", segment_memfd}, {"ftok", segment_ftok}, {NULL, NULL}};
  shmh_newtype(L, SHMH_SEGMENT, methods, metamethods);
  /* Replace the method table as __index by a function that also answers the fields. */
  luaL_getmetatable(L, SHMH_SEGMENT);
  lua_getfield(L, -1, "__index");
  lua_pushcclosure(L, segment_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_setfuncs(L, functions, 0);
  lua_pushinteger(L, IPC_PRIVATE);
  lua_setfield(L, -2, "IPC_PRIVATE");
}
