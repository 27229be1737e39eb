/*
 * shmhost.ring: the shared-memory ring of host/core/ring.c as a Lua object.
 *
 *   local r = shm.ring.create(seg, off, capacity)   -- or shm.ring.attach(seg, off)
 *   r:push(s) -> true | false (full)    r:put(s [, timeout]) waits for room
 *   r:pop() -> s | nil (empty)          r:get([timeout]) waits for a message
 *   r:capacity(), r:used(), r:peer("producer"|"consumer") -> state, pid
 *
 * A ring keeps its segment alive through its user value, and finds its memory through the
 * segment on every call, so a segment that was closed raises instead of being read.
 *
 * Waiting. A task that must wait first spins briefly on the loop thread (a peer that answers
 * within microseconds costs no sleep at all), then hands the sleep to a thread of its own: the
 * thread only sleeps on the futex word and reports back through a uv_async_t; everything that
 * reads the ring happens on the loop thread, where the segment's state is known. The thread
 * sleeps in slices, so each slice ends on the loop, which checks for a dead peer, the timeout
 * and a closed ring. (libuv's thread pool is not used: a wait parked there would starve file
 * I/O once four tasks wait, DESIGN section 10.)
 */
#include "bind.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ring.h"
#include "seg.h"

#define SLICE_MS 100        /* a sleep slice: a dead peer is noticed within about this */
#define SPIN_NS  50000      /* how long the loop thread polls before it hands over to a thread */

static const char *const role_names[2] = {"put", "get"};

/* One side's waiting machinery: a thread that sleeps on the futex word, and the async handle
 * it wakes the loop with. Heap-allocated because the handle must outlive the ring's __gc until
 * libuv runs its close callback. */
typedef struct waiter {
  uv_async_t async;          /* data stays NULL: the runtime tells our handles from luv's so */
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int started, stop;
  /* loop -> thread, under mu */
  int armed;
  uint32_t *word;
  uint32_t value;
  int ms;                    /* this slice, up to SLICE_MS */
  /* thread -> loop, under mu */
  int fired, result;
  /* loop thread only */
  lua_State *task;           /* the waiting task, NULL when none */
  int ring_ref, msg_ref;     /* registry refs held while a task waits */
  const char *msg;           /* put: the message (kept alive by msg_ref) */
  size_t len;
  double deadline;           /* < 0: none */
} waiter;

typedef struct lring {
  shmh_ring ring;
  lua_Integer off;
  int open;
  waiter *w[2];              /* per role, created at the first wait */
} lring;

/* ------------------------------------------------------------ memory */

static lring *ring_check(lua_State *L, int idx) {
  lring *r = luaL_checkudata(L, idx, SHMH_RING);
  if (!r->open) luaL_error(L, "ring is closed");
  return r;
}

/* Finds the ring's memory through its segment (raising when the segment was closed or
 * truncated) and refreshes the pointers, which a resize of the segment may have moved. */
static shmh_seg *ring_memory(lua_State *L, int idx, lring *r) {
  lua_getiuservalue(L, idx, 1);
  /* No argument number: the segment is the ring's, not one the caller passed. */
  void *p = shmh_segment_ptr(L, -1, r->off, shmh_ring_footprint(r->ring.capacity), 1, 0);
  shmh_seg *seg = shmh_segment_check(L, -1);
  lua_pop(L, 1);
  r->ring.base = p;
  r->ring.data = (unsigned char *)p + SHMH_RING_HEADER;
  return seg;
}

/* ------------------------------------------------------------ one attempt */

/* Tries once to do what `role` wants. Pushes the results and returns their count, or returns 0
 * when the side must wait. Raises when the segment went away. */
static int ring_attempt(lua_State *L, int idx, lring *r, int role, const char *msg, size_t len) {
  shmh_seg *seg = ring_memory(L, idx, r);
  int rc;
  if (role == SHMH_RING_CONSUMER) {
    const void *p;
    size_t n;
    rc = shmh_ring_peek(&r->ring, &p, &n);
    if (rc == 0) {
      lua_pushlstring(L, p, n);
      shmh_ring_release(&r->ring);
    }
  } else {
    rc = shmh_ring_push(&r->ring, msg, len);
    if (rc == 0) lua_pushboolean(L, 1);
  }
  shmh_segment_touched(L, seg);
  if (rc == 0) return 1;
  if (rc == -EAGAIN) return 0;
  if (rc == -EMSGSIZE)
    return luaL_error(L, "ring: message of %I bytes can never fit (capacity %I)",
                      (lua_Integer)len, (lua_Integer)r->ring.capacity);
  return shmh_fail(L, -rc, role == SHMH_RING_CONSUMER ? "ring:get" : "ring:put", "(corrupt ring)");
}

static int fail_peer(lua_State *L, int state) {
  lua_pushnil(L);
  lua_pushstring(L, state == 0 ? "peer closed" : "peer died");
  lua_pushinteger(L, state == 0 ? EPIPE : ESRCH);
  return 3;
}

/* ------------------------------------------------------------ the waiting thread */

static void *waiter_main(void *arg) {
  waiter *w = arg;
  pthread_mutex_lock(&w->mu);
  for (;;) {
    while (!w->armed && !w->stop) pthread_cond_wait(&w->cv, &w->mu);
    if (w->stop) break;
    uint32_t *word = w->word, value = w->value;
    int ms = w->ms;
    w->armed = 0;
    pthread_mutex_unlock(&w->mu);
    /* Only the futex call touches the word: if the segment was unmapped meanwhile, the kernel
     * answers EFAULT instead of this thread faulting. */
    int rc = shmh_ring_sleep(word, value, ms);
    pthread_mutex_lock(&w->mu);
    w->fired = 1;
    w->result = rc;
    uv_async_send(&w->async);
  }
  pthread_mutex_unlock(&w->mu);
  return NULL;
}

static void waiter_async_cb(uv_async_t *a);

static waiter *waiter_get(lua_State *L, lring *r, int role) {
  if (r->w[role]) return r->w[role];
  waiter *w = calloc(1, sizeof *w);
  if (w == NULL) luaL_error(L, "ring:%s: out of memory", role_names[role]);
  w->ring_ref = w->msg_ref = LUA_NOREF;
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cv, NULL);
  if (pthread_create(&w->thread, NULL, waiter_main, w) != 0) {
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
    luaL_error(L, "ring:%s: cannot start a waiting thread", role_names[role]);
  }
  w->started = 1;
  uv_async_init(shmh_rt_loop(L), &w->async, waiter_async_cb);
  uv_unref((uv_handle_t *)&w->async);
  r->w[role] = w;
  return w;
}

static void waiter_close_cb(uv_handle_t *h) {
  /* Runs after lua_close at shutdown: only memory of our own is touched. */
  waiter *w = shmh_container_of(h, waiter, async);
  pthread_cond_destroy(&w->cv);
  pthread_mutex_destroy(&w->mu);
  free(w);
}

/* Ends the wait of w's task: releases what the wait held and returns the task, whose wake the
 * caller then delivers. */
static lua_State *waiter_finish(lua_State *L, waiter *w) {
  lua_State *task = w->task;
  w->task = NULL;
  w->msg = NULL;
  luaL_unref(L, LUA_REGISTRYINDEX, w->ring_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, w->msg_ref);
  w->ring_ref = w->msg_ref = LUA_NOREF;
  uv_unref((uv_handle_t *)&w->async);
  return task;
}

/* Announces the wait in the ring and gives the sleep to the thread. Returns 1 when the side
 * turned out ready (try again), 0 when armed, or pushes a failure and returns its count (< 0
 * encoded as -n). */
static int waiter_arm(lua_State *L, int idx, lring *r, int role, waiter *w) {
  ring_memory(L, idx, r);
  uint32_t *word, value;
  int rc = shmh_ring_prepare(&r->ring, role, w->len, &word, &value);
  if (rc == 1) return 1;
  if (rc < 0) return -shmh_fail(L, -rc, role == SHMH_RING_CONSUMER ? "ring:get" : "ring:put",
                                "(corrupt ring)");
  /* The slice ends no later than the deadline, so a timeout is reported on time. */
  int ms = SLICE_MS;
  if (w->deadline >= 0) {
    double left = (w->deadline - shmh_rt_now()) * 1000.0 + 1.0;
    if (left < ms) ms = left < 1 ? 1 : (int)left;
  }
  pthread_mutex_lock(&w->mu);
  w->word = word;
  w->value = value;
  w->ms = ms;
  w->armed = 1;
  w->fired = 0;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
  return 0;
}

/* One step of a wait, on the loop thread, in protected mode (the segment check may raise):
 * arguments are the ring and a light userdata for the slice result. Returns the task's
 * results, or nothing while it must keep waiting. */
static int ring_step(lua_State *L) {
  lring *r = luaL_checkudata(L, 1, SHMH_RING);
  int role = (int)lua_tointeger(L, 2);
  int slice = (int)lua_tointeger(L, 3);
  waiter *w = r->w[role];
  for (int round = 0; round < 4; round++) {
    lua_settop(L, 3);
    int n = ring_attempt(L, 1, r, role, w->msg, w->len);
    if (n > 0) return n;
    /* Not ready: has the peer gone, has the time run out? The existence probe (system calls)
     * is made only after a slice passed without a wake. */
    int peer = shmh_ring_peer(&r->ring, role, slice == -ETIMEDOUT);
    if (peer <= 0) return fail_peer(L, peer);
    if (w->deadline >= 0 && shmh_rt_now() >= w->deadline) return shmh_timeout(L);
    n = waiter_arm(L, 1, r, role, w);
    if (n == 0) return 0;
    if (n < 0) return -n;
  }
  /* Ready on every recheck yet never done (a peer racing us): look again on the next pass. */
  lua_settop(L, 3);
  uv_async_send(&w->async);
  return 0;
}

static void waiter_async_cb(uv_async_t *a) {
  waiter *w = shmh_container_of(a, waiter, async);
  pthread_mutex_lock(&w->mu);
  int fired = w->fired, result = w->result;
  w->fired = 0;
  pthread_mutex_unlock(&w->mu);
  if (w->task == NULL) return; /* a late report for a wait that already ended */
  lua_State *L = shmh_rt_main(w->task);
  int top = lua_gettop(L);
  lua_pushcfunction(L, ring_step);
  lua_rawgeti(L, LUA_REGISTRYINDEX, w->ring_ref);
  lring *r = lua_touserdata(L, -1);
  int role = r->w[SHMH_RING_CONSUMER] == w ? SHMH_RING_CONSUMER : SHMH_RING_PRODUCER;
  lua_pushinteger(L, role);
  lua_pushinteger(L, fired ? result : 0);
  int n;
  if (lua_pcall(L, 3, LUA_MULTRET, 0) != LUA_OK) {
    /* The segment went away under the ring (closed, truncated): the wait fails with why. */
    lua_pushnil(L);
    lua_insert(L, -2);
    lua_pushinteger(L, EFAULT);
    n = 3;
  } else {
    n = lua_gettop(L) - top;
  }
  if (n == 0) return;
  lua_State *task = waiter_finish(L, w);
  lua_xmove(L, task, n);
  lua_settop(L, top);
  shmh_rt_wake(task, n);
}

/* ------------------------------------------------------------ waiting from a task */

static int ring_wait(lua_State *L, lring *r, int role, const char *msg, size_t len, int targ) {
  const char *what = role == SHMH_RING_CONSUMER ? "ring:get" : "ring:put";
  double timeout = shmh_check_seconds(L, targ, -1);
  /* A call that may wait needs a task whether or not this one would have to, so a misuse
   * shows at once rather than on the day the data comes late. */
  if (timeout != 0) shmh_rt_task(L, what);
  int n;
retry:
  n = ring_attempt(L, 1, r, role, msg, len);
  if (n) return n;
  /* Poll a little on the loop thread before sleeping: a peer that answers fast (a ping-pong
   * partner on another core) is then caught without two thread hand-offs. */
  double spin = timeout >= 0 && timeout < SPIN_NS * 1e-9 ? timeout : SPIN_NS * 1e-9;
  double end = shmh_rt_now() + spin;
  shmh_seg *seg = ring_memory(L, 1, r);
  int ready = 0;
  do {
    /* No Lua runs during the spin, so the pointers ring_memory refreshed stay valid. */
    for (int i = 0; i < 64 && !ready; i++) ready = shmh_ring_ready(&r->ring, role, len) != 0;
  } while (!ready && shmh_rt_now() < end);
  shmh_segment_touched(L, seg);
  if (ready) {
    n = ring_attempt(L, 1, r, role, msg, len);
    if (n) return n;
  }
  if (timeout == 0) return shmh_timeout(L);
  waiter *w = waiter_get(L, r, role);
  if (w->task != NULL)
    return luaL_error(L, "%s: another task is already waiting on this ring", what);
  int peer = shmh_ring_peer(&r->ring, role, 0);
  if (peer <= 0) return fail_peer(L, peer);
  w->len = len;
  w->msg = msg;
  w->deadline = timeout >= 0 ? shmh_rt_now() + timeout : -1;
  n = waiter_arm(L, 1, r, role, w);
  if (n == 1) goto retry; /* ready after all */
  if (n < 0) return -n;
  /* Armed: hold the ring and the message while the task sleeps. */
  w->task = L;
  lua_pushvalue(L, 1);
  w->ring_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  if (role == SHMH_RING_PRODUCER) {
    lua_pushvalue(L, 2);
    w->msg_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  uv_ref((uv_handle_t *)&w->async);
  return shmh_rt_yield(L);
}

/* ------------------------------------------------------------ methods */

static int ring_push(lua_State *L) {
  lring *r = ring_check(L, 1);
  size_t len;
  const char *s = luaL_checklstring(L, 2, &len);
  int n = ring_attempt(L, 1, r, SHMH_RING_PRODUCER, s, len);
  if (n) return n;
  lua_pushboolean(L, 0);
  return 1;
}

static int ring_put(lua_State *L) {
  lring *r = ring_check(L, 1);
  size_t len;
  const char *s = luaL_checklstring(L, 2, &len);
  return ring_wait(L, r, SHMH_RING_PRODUCER, s, len, 3);
}

static int ring_pop(lua_State *L) {
  lring *r = ring_check(L, 1);
  int n = ring_attempt(L, 1, r, SHMH_RING_CONSUMER, NULL, 0);
  if (n) return n;
  lua_pushnil(L);
  return 1;
}

static int ring_get(lua_State *L) {
  lring *r = ring_check(L, 1);
  return ring_wait(L, r, SHMH_RING_CONSUMER, NULL, 0, 2);
}

static int ring_capacity(lua_State *L) {
  lring *r = ring_check(L, 1);
  lua_pushinteger(L, (lua_Integer)r->ring.capacity);
  return 1;
}

static int ring_used(lua_State *L) {
  lring *r = ring_check(L, 1);
  shmh_seg *seg = ring_memory(L, 1, r);
  uint64_t used = shmh_ring_used(&r->ring);
  shmh_segment_touched(L, seg);
  lua_pushinteger(L, (lua_Integer)used);
  return 1;
}

/* r:peer(role): the process on side `role` ("producer" or "consumer") as the header records
 * it: "absent" (no process has taken the side yet), "alive", "closed" (it closed its ring) or
 * "dead" (it ended without closing), and its pid (nil when absent). */
static int ring_peer(lua_State *L) {
  lring *r = ring_check(L, 1);
  static const char *const roles[] = {"producer", "consumer", NULL};
  int role = luaL_checkoption(L, 2, NULL, roles);
  shmh_seg *seg = ring_memory(L, 1, r);
  int32_t pid = shmh_ring_pid(&r->ring, role);
  /* shmh_ring_peer answers for the peer of the side it is given. */
  int st = shmh_ring_peer(&r->ring, !role, 1);
  shmh_segment_touched(L, seg);
  if (pid == 0) {
    lua_pushliteral(L, "absent");
    return 1;
  }
  lua_pushstring(L, pid < 0 ? "closed" : st > 0 ? "alive" : "dead");
  lua_pushinteger(L, pid < 0 ? -(lua_Integer)pid : pid);
  return 2;
}

/* Touches the ring's memory at close only when the segment is still mapped: run protected,
 * since the segment check raises when it is not. */
static int ring_close_memory(lua_State *L) {
  lring *r = lua_touserdata(L, 1);
  ring_memory(L, 1, r);
  for (int role = 0; role < 2; role++) {
    shmh_ring_leave(&r->ring, role);
    /* Our own sleeping thread, if any, returns at once. */
    if (r->w[role]) shmh_ring_kick(&r->ring, role);
  }
  return 0;
}

/* close(), __gc and __close: idempotent, never raises. A task waiting on the ring resumes
 * with nil, "closed"; the threads end before this returns. */
static int ring_close(lua_State *L) {
  lring *r = luaL_checkudata(L, 1, SHMH_RING);
  if (!r->open) return 0;
  r->open = 0;
  lua_pushcfunction(L, ring_close_memory);
  lua_pushvalue(L, 1);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) lua_pop(L, 1);
  for (int role = 0; role < 2; role++) {
    waiter *w = r->w[role];
    if (w == NULL) continue;
    r->w[role] = NULL;
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    if (w->started) pthread_join(w->thread, NULL);
    if (w->task) {
      lua_State *task = waiter_finish(L, w);
      /* At shutdown the task is never resumed again; leave its stack alone. */
      if (!shmh_rt_exiting(L)) {
        lua_pushnil(task);
        lua_pushliteral(task, "closed");
        shmh_rt_wake(task, 2);
      }
    }
    uv_close((uv_handle_t *)&w->async, waiter_close_cb);
  }
  return 0;
}

/* r:close() -> true, as every close() does. */
static int ring_close_method(lua_State *L) {
  ring_close(L);
  lua_pushboolean(L, 1);
  return 1;
}

static int ring_tostring(lua_State *L) {
  lring *r = luaL_checkudata(L, 1, SHMH_RING);
  if (!r->open) lua_pushfstring(L, "%s (closed)", SHMH_RING);
  else lua_pushfstring(L, "%s (capacity %I at offset %I)", SHMH_RING,
                       (lua_Integer)r->ring.capacity, r->off);
  return 1;
}

/* ------------------------------------------------------------ constructors */

static lring *ring_new(lua_State *L) {
  lring *r = lua_newuserdatauv(L, sizeof *r, 1);
  memset(r, 0, sizeof *r);
  luaL_setmetatable(L, SHMH_RING);
  return r;
}

static lua_Integer check_offset(lua_State *L, int arg) {
  lua_Integer off = luaL_checkinteger(L, arg);
  luaL_argcheck(L, off >= 0, arg, "offset must not be negative");
  shmh_check_aligned(L, arg, off, 8, "a ring");
  return off;
}

static int ring_create(lua_State *L) {
  shmh_segment_check(L, 1);
  lua_Integer off = check_offset(L, 2);
  lua_Integer cap = luaL_checkinteger(L, 3);
  luaL_argcheck(L, cap >= 8 && cap % 8 == 0, 3, "capacity must be a positive multiple of 8");
  luaL_argcheck(L, (uint64_t)cap <= SHMH_RING_MAX_CAPACITY, 3, "capacity too large");
  void *p = shmh_segment_ptr(L, 1, off, shmh_ring_footprint((uint64_t)cap), 1, 2);
  shmh_seg *seg = shmh_segment_check(L, 1);
  lring *r = ring_new(L);
  int rc = shmh_ring_create(&r->ring, p, shmh_ring_footprint((uint64_t)cap), (uint64_t)cap);
  shmh_segment_touched(L, seg);
  if (rc < 0) return shmh_fail(L, -rc, "ring.create", NULL);
  r->off = off;
  r->open = 1;
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  return 1;
}

static int ring_attach(lua_State *L) {
  shmh_seg *seg = shmh_segment_check(L, 1);
  lua_Integer off = check_offset(L, 2);
  luaL_argcheck(L, (size_t)off <= seg->size, 2, "offset past the end of the segment");
  size_t region = seg->size - (size_t)off;
  if (region < SHMH_RING_HEADER) {
    lua_pushnil(L);
    lua_pushfstring(L, "ring.attach: no ring at offset %I (only %I bytes left)", off,
                    (lua_Integer)region);
    lua_pushinteger(L, EINVAL);
    return 3;
  }
  void *p = shmh_segment_ptr(L, 1, off, region, 1, 2);
  lring *r = ring_new(L);
  int rc = shmh_ring_attach(&r->ring, p, region);
  shmh_segment_touched(L, seg);
  if (rc < 0) {
    lua_pushnil(L);
    if (rc == -EINVAL) lua_pushfstring(L, "ring.attach: no ring at offset %I", off);
    else if (rc == -EPROTO) lua_pushfstring(L, "ring.attach: unsupported ring version at offset %I", off);
    else lua_pushfstring(L, "ring.attach: corrupt ring header at offset %I", off);
    lua_pushinteger(L, -rc);
    return 3;
  }
  r->off = off;
  r->open = 1;
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  return 1;
}

static int ring_footprint(lua_State *L) {
  lua_Integer cap = luaL_checkinteger(L, 1);
  luaL_argcheck(L, cap >= 8 && cap % 8 == 0, 1, "capacity must be a positive multiple of 8");
  lua_pushinteger(L, (lua_Integer)shmh_ring_footprint((uint64_t)cap));
  return 1;
}

void shmh_bind_ring(lua_State *L) {
  static const luaL_Reg methods[] = {
    {"push", ring_push}, {"put", ring_put}, {"pop", ring_pop}, {"get", ring_get},
    {"capacity", ring_capacity}, {"used", ring_used}, {"peer", ring_peer},
    {"close", ring_close_method}, {NULL, NULL}};
  static const luaL_Reg metamethods[] = {
    {"__gc", ring_close}, {"__close", ring_close}, {"__tostring", ring_tostring}, {NULL, NULL}};
  static const luaL_Reg functions[] = {
    {"create", ring_create}, {"attach", ring_attach}, {"footprint", ring_footprint},
    {NULL, NULL}};
  shmh_newtype(L, SHMH_RING, methods, metamethods);
  lua_newtable(L);
  luaL_setfuncs(L, functions, 0);
  lua_pushinteger(L, SHMH_RING_HEADER);
  lua_setfield(L, -2, "HEADER");
  lua_setfield(L, -2, "ring");
}
