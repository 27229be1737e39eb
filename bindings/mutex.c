/*
 * shmhost.mutex: a process-shared pthread mutex that lives in a segment, robust and
 * error-checking by default. The object holds only the offset; its user value is the
 * segment, which it keeps alive, and every operation goes back through the segment's checks
 * (open, in bounds, writable, not truncated), so a mutex can never touch an unmapped page.
 *
 * Mutex ownership belongs to a thread, and every task of this process runs on the loop's one
 * thread. So a task that finds the mutex busy cannot block (it would block the task that holds
 * it too) and cannot hand the wait to a worker thread (the worker would own the lock): it
 * retries with backoff through shmhost.sleep, and the other tasks run in between.
 */
#include "bind.h"
#include "seg.h"
#include "sync.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

typedef struct {
  lua_Integer off;
  int open;
} mutex_ud;

/* The registry table address -> thread that locked the mutex at that address from this
 * process, so a task that locks twice is told EDEADLK instead of waiting for itself. */
static const char HOLDERS_KEY = 'h';

/* The registry table segment -> {offset -> owner-died hook}, weak in its keys. */
static const char HOOKS_KEY = 'k';

#define BACKOFF_FIRST 50e-6 /* seconds */
#define BACKOFF_MAX 10e-3

static mutex_ud *mutex_ud_at(lua_State *L, int idx) { return luaL_checkudata(L, idx, SHMH_MUTEX); }

static mutex_ud *mutex_check(lua_State *L, int idx) {
  mutex_ud *u = mutex_ud_at(L, idx);
  if (!u->open) luaL_argerror(L, idx, "mutex is closed");
  return u;
}

/* The mutex of the object at stack index 1, checked for `verb` (NULL for a read-only use).
 * Leaves the segment on the stack top (the caller pops it after shmh_segment_touched). */
static pthread_mutex_t *mutex_ptr(lua_State *L, const char *verb, shmh_seg **segp) {
  mutex_ud *u = mutex_check(L, 1);
  lua_getiuservalue(L, 1, 1);
  int t = lua_gettop(L);
  shmh_seg *seg = luaL_testudata(L, t, SHMH_SEGMENT); /* a shmh_seg heads the userdata */
  if (seg == NULL || seg->kind == SHMH_SEG_NONE)
    luaL_error(L, "mutex at offset %I: its segment is closed", u->off);
  if (verb && seg->readonly)
    luaL_error(L, "cannot %s a mutex in a read-only mapping (a mutex needs PROT_WRITE)", verb);
  pthread_mutex_t *m = shmh_segment_ptr(L, t, u->off, sizeof(pthread_mutex_t), verb != NULL, 0);
  *segp = seg;
  return m;
}

static const char *mutex_label(lua_State *L) {
  return lua_pushfstring(L, "mutex at offset %I", mutex_ud_at(L, 1)->off);
}

/* Records (or forgets, with `held` false) which thread of this process locked m. */
static void holders_set(lua_State *L, pthread_mutex_t *m, int held) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &HOLDERS_KEY);
  if (held) lua_pushthread(L);
  else lua_pushnil(L);
  lua_rawsetp(L, -2, m);
  lua_pop(L, 1);
}

/* True when waiting for m, which this thread holds, could never end: the holder is the
 * calling task itself, or a task that has finished (or failed) without unlocking. */
static int holders_stuck(lua_State *L, pthread_mutex_t *m) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &HOLDERS_KEY);
  lua_rawgetp(L, -1, m);
  lua_State *h = lua_tothread(L, -1);
  lua_Debug ar;
  int stuck = h == L || (h != NULL && h != shmh_rt_main(L) && lua_status(h) != LUA_YIELD &&
                         lua_getstack(h, 0, &ar) == 0);
  lua_pop(L, 2);
  return stuck;
}

/* Pushes the results of a lock that returned rc; the segment is on top and is removed. */
static int mutex_lock_result(lua_State *L, pthread_mutex_t *m, shmh_seg *seg, int rc) {
  shmh_segment_touched(L, seg);
  lua_pop(L, 1);
  if (rc >= 0) holders_set(L, m, 1);
  if (rc == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  if (rc == SHMH_OWNER_DIED) {
    lua_pushboolean(L, 1);
    lua_pushliteral(L, "owner-died");
    return 2;
  }
  if (rc == -ETIMEDOUT) return shmh_timeout(L);
  return shmh_fail(L, -rc, "lock", mutex_label(L));
}

/* Stack while a task retries: 1 self, 2 timeout, 3 deadline (monotonic seconds or nil).
 * `ctx` is the next delay in microseconds. */
static int mutex_lock_k(lua_State *L, int status, lua_KContext ctx) {
  for (;;) {
    /* Closed while this task waited for it: the task resumes with nil, "closed". */
    if (status == LUA_YIELD && !mutex_ud_at(L, 1)->open) {
      lua_pushnil(L);
      lua_pushliteral(L, "closed");
      return 2;
    }
    status = LUA_YIELD;
    shmh_seg *seg;
    pthread_mutex_t *m = mutex_ptr(L, "lock", &seg);
    int rc = shmh_mutex_trylock(m);
    if (rc == -EBUSY && shmh_mutex_held_by_me(m) && holders_stuck(L, m)) rc = -EDEADLK;
    int timed_out = 0;
    if (rc == -EBUSY && !lua_isnil(L, 3)) timed_out = shmh_rt_now() >= lua_tonumber(L, 3);
    if (rc != -EBUSY || timed_out)
      return mutex_lock_result(L, m, seg, timed_out ? -ETIMEDOUT : rc);
    lua_pop(L, 1);
    double delay = (double)ctx * 1e-6;
    if (!lua_isnil(L, 3)) {
      double left = lua_tonumber(L, 3) - shmh_rt_now();
      if (left < delay) delay = left > 0 ? left : 0;
    }
    lua_KContext max = (lua_KContext)(BACKOFF_MAX * 1e6);
    ctx = ctx * 2 > max ? max : ctx * 2;
    /* shmhost.sleep yields the task; when it is resumed Lua calls this function again (the
     * continuation), which retries. Its timers count whole milliseconds, so a delay below one
     * becomes sleep(0): one turn of the loop, which lets the other tasks and callbacks run. */
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushnumber(L, delay < 1e-3 ? 0 : delay);
    lua_callk(L, 1, 0, ctx, mutex_lock_k);
  }
}

/* m:lock([timeout]) -> true [, "owner-died"] | nil, "timeout", ETIMEDOUT | nil, msg, errno */
static int mutex_lock(lua_State *L) {
  mutex_check(L, 1);
  int timed = !lua_isnoneornil(L, 2);
  double timeout = shmh_check_seconds(L, 2, 0);
  lua_settop(L, 2);
  if (shmh_rt_in_task(L) && lua_isyieldable(L)) {
    if (timed) lua_pushnumber(L, shmh_rt_now() + timeout);
    else lua_pushnil(L);
    return mutex_lock_k(L, LUA_OK, (lua_KContext)(BACKOFF_FIRST * 1e6));
  }
  shmh_seg *seg;
  pthread_mutex_t *m = mutex_ptr(L, "lock", &seg);
  /* A luv callback is not a task: it blocks, as briefly as the holder's critical section.
   * A lock held by a task of this very process is refused with EDEADLK, not waited for. */
  int rc = timed ? shmh_mutex_timedlock(m, timeout) : shmh_mutex_lock(m);
  return mutex_lock_result(L, m, seg, rc);
}

static int mutex_trylock(lua_State *L) {
  shmh_seg *seg;
  pthread_mutex_t *m = mutex_ptr(L, "lock", &seg);
  int rc = shmh_mutex_trylock(m);
  if (rc == -EBUSY) {
    shmh_segment_touched(L, seg);
    lua_pushboolean(L, 0);
    lua_pushliteral(L, "busy");
    return 2;
  }
  return mutex_lock_result(L, m, seg, rc);
}

static int mutex_unlock(lua_State *L) {
  shmh_seg *seg;
  pthread_mutex_t *m = mutex_ptr(L, "unlock", &seg);
  int rc = shmh_mutex_unlock(m);
  shmh_segment_touched(L, seg);
  lua_pop(L, 1);
  if (rc < 0) return shmh_fail(L, -rc, "unlock", mutex_label(L));
  if (!shmh_mutex_held_by_me(m)) holders_set(L, m, 0); /* a recursive one may still be held */
  lua_pushboolean(L, 1);
  return 1;
}

static int mutex_consistent(lua_State *L) {
  shmh_seg *seg;
  pthread_mutex_t *m = mutex_ptr(L, "repair", &seg);
  int rc = shmh_mutex_consistent(m);
  shmh_segment_touched(L, seg);
  lua_pop(L, 1);
  if (rc < 0) return shmh_fail(L, -rc, "pthread_mutex_consistent", mutex_label(L));
  lua_pushboolean(L, 1);
  return 1;
}

/* m:init{robust=true, type="errorcheck"|"normal"|"recursive"} */
static int mutex_init(lua_State *L) {
  static const char *const known[] = {"robust", "type", NULL};
  static const char *const types[] = {"errorcheck", "normal", "recursive", NULL};
  mutex_check(L, 1);
  shmh_check_options(L, 2, known);
  struct shmh_mutex_opts o;
  shmh_mutex_opts_default(&o);
  o.robust = shmh_opt_bool(L, 2, "robust", 1);
  const char *type = shmh_opt_string(L, 2, "type", "errorcheck");
  int i = 0;
  while (types[i] && strcmp(types[i], type) != 0) i++;
  if (types[i] == NULL)
    luaL_argerror(L, 2, lua_pushfstring(L, "option 'type' must be \"errorcheck\", \"normal\" or \"recursive\", got \"%s\"", type));
  o.type = (enum shmh_mutex_type)i;
  lua_settop(L, 2);
  shmh_seg *seg;
  pthread_mutex_t *m = mutex_ptr(L, "initialize", &seg);
  int rc = shmh_mutex_init(m, &o);
  shmh_segment_touched(L, seg);
  lua_pop(L, 1);
  if (rc < 0) return shmh_fail(L, -rc, "pthread_mutex_init", mutex_label(L));
  holders_set(L, m, 0);
  lua_pushboolean(L, 1);
  return 1;
}

/* Pushes the table of hooks of the segment in the mutex's user value 1 (offset -> function),
 * creating it when `create`; pushes nil when there is none. Hooks are kept per segment and
 * offset, not per object: a layout view gives a new object at every `d.lock`, and the hook
 * set through one must serve the next. */
static void mutex_hooks(lua_State *L, int create) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &HOOKS_KEY);
  lua_getiuservalue(L, 1, 1);
  if (lua_rawget(L, -2) == LUA_TNIL && create) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_getiuservalue(L, 1, 1);
    lua_pushvalue(L, -2);
    lua_rawset(L, -4);
  }
  lua_remove(L, -2);
}

/* m:on_owner_died(fn | nil): the hook m:with runs when it took the lock from a dead holder. */
static int mutex_on_owner_died(lua_State *L) {
  mutex_ud *u = mutex_check(L, 1);
  if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_settop(L, 2);
  mutex_hooks(L, 1);
  lua_pushvalue(L, 2);
  lua_rawseti(L, -2, u->off);
  lua_pushboolean(L, 1);
  return 1;
}

/* For m:with: pushes the owner-died hook, or prints the warning and pushes nil. */
static int mutex_died_hook(lua_State *L) {
  mutex_ud *u = mutex_check(L, 1);
  mutex_hooks(L, 0);
  if (lua_istable(L, -1) && lua_rawgeti(L, -1, u->off) == LUA_TFUNCTION) return 1;
  fprintf(stderr, "warning: mutex at offset %lld: its previous holder died holding it; the data "
                  "it guards may be half updated (set m:on_owner_died(fn) to repair it)\n",
          (long long)u->off);
  lua_pushnil(L);
  return 1;
}

/* m:with(fn, ...) is written in Lua: fn may wait (yield), and a Lua function can yield
 * through pcall where a C one would need a continuation at every step. */
static const char WITH_SRC[] =
  "local died_hook = ...\n"
  "return function(m, fn, ...)\n"
  "  if type(fn) ~= 'function' then\n"
  "    error(\"bad argument #1 to 'with' (function expected, got \" .. type(fn) .. ')', 2)\n"
  "  end\n"
  "  local ok, why = m:lock()\n"
  "  if not ok then error('m:with: ' .. tostring(why), 2) end\n"
  "  local r = table.pack(pcall(function(...)\n"
  "    if why == 'owner-died' then\n"
  "      local hook = died_hook(m)\n"
  "      if hook then hook(m) end\n"
  "    end\n"
  "    return fn(...)\n"
  "  end, ...))\n"
  "  local uok, uwhy, uerr = pcall(m.unlock, m)\n"
  "  if not r[1] then error(r[2], 0) end\n"
  "  if not uok then error(uwhy, 0) end\n"
  "  if not uwhy then error('m:with: ' .. tostring(uerr), 2) end\n"
  "  return table.unpack(r, 2, r.n)\n"
  "end\n";

/* Never raises: serves close(), __gc and __close. The mutex itself stays as it is in the
 * segment (other processes use it); only this handle on it goes. */
static void mutex_shut(lua_State *L, int idx) {
  mutex_ud *u = mutex_ud_at(L, idx);
  if (!u->open) return;
  u->open = 0;
  lua_pushnil(L);
  lua_setiuservalue(L, idx, 1);
}

static int mutex_close(lua_State *L) {
  mutex_shut(L, 1);
  lua_pushboolean(L, 1);
  return 1;
}

static int mutex_gc(lua_State *L) {
  mutex_shut(L, 1);
  return 0;
}

static int mutex_tostring(lua_State *L) {
  mutex_ud *u = mutex_ud_at(L, 1);
  if (!u->open) lua_pushliteral(L, SHMH_MUTEX " (closed)");
  else lua_pushfstring(L, SHMH_MUTEX " (offset %I)", u->off);
  return 1;
}

static void mutex_new(lua_State *L, int segidx, lua_Integer off) {
  segidx = lua_absindex(L, segidx);
  mutex_ud *u = lua_newuserdatauv(L, sizeof *u, 1);
  u->open = 0;
  u->off = off;
  luaL_setmetatable(L, SHMH_MUTEX);
  lua_pushvalue(L, segidx);
  lua_setiuservalue(L, -2, 1);
  u->open = 1;
}

/* shm.mutex(seg, off): the mutex at byte offset `off` of the segment (initialize it once with
 * m:init, or use one a peer initialized). */
static int mutex_new_api(lua_State *L) {
  luaL_checkudata(L, 1, SHMH_SEGMENT);
  lua_Integer off = luaL_checkinteger(L, 2);
  shmh_segment_ptr(L, 1, off, sizeof(pthread_mutex_t), 0, 2);
  shmh_check_aligned(L, 2, off, _Alignof(pthread_mutex_t), "pthread_mutex_t");
  mutex_new(L, 1, off);
  return 1;
}

void shmh_mutex_push(lua_State *L, int segidx, lua_Integer off) { mutex_new(L, segidx, off); }

void shmh_bind_mutex(lua_State *L) {
  static const luaL_Reg methods[] = {
    {"init", mutex_init},       {"lock", NULL},       {"trylock", mutex_trylock},
    {"unlock", mutex_unlock},   {"consistent", mutex_consistent},
    {"on_owner_died", mutex_on_owner_died},        {"close", mutex_close},
    {"with", NULL},             {NULL, NULL}};
  static const luaL_Reg meta[] = {
    {"__gc", mutex_gc}, {"__close", mutex_gc}, {"__tostring", mutex_tostring}, {NULL, NULL}};
  shmh_newtype(L, SHMH_MUTEX, methods, meta);

  lua_newtable(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &HOLDERS_KEY);
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &HOOKS_KEY);

  luaL_getmetatable(L, SHMH_MUTEX);
  lua_getfield(L, -1, "__index");
  /* lock retries through shmhost.sleep, which the module table already has. */
  lua_getfield(L, -3, "sleep");
  lua_pushcclosure(L, mutex_lock, 1);
  lua_setfield(L, -2, "lock");
  if (luaL_loadbuffer(L, WITH_SRC, sizeof WITH_SRC - 1, "=mutex.with") != LUA_OK) lua_error(L);
  lua_pushcfunction(L, mutex_died_hook);
  lua_call(L, 1, 1);
  lua_setfield(L, -2, "with");
  lua_pop(L, 2);

  lua_pushcfunction(L, mutex_new_api);
  lua_setfield(L, -2, "mutex");
  /* The sizes a script needs to place a mutex by hand (layouts place them for it). */
  lua_pushinteger(L, (lua_Integer)sizeof(pthread_mutex_t));
  lua_setfield(L, -2, "MUTEX_SIZE");
}
