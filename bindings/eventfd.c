/*
 * shmhost.eventfd: a kernel counter to wake a peer with. The object owns the descriptor and a
 * uv_poll_t that watches it only while someone waits (ev:wait) or listens (ev:on), so an idle
 * eventfd never keeps the process alive.
 *
 * The poll handle lives in a heap block, not in the userdata: libuv needs it until its close
 * callback has run, which can be after the userdata is collected (and at shutdown after
 * lua_close). The block is freed by whichever comes last, the collection or the close callback.
 */
#include "bind.h"
#include "notify.h"
#include "sync.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct evfd {
  uv_poll_t poll;       /* data stays NULL: the runtime tells our handles from luv's that way */
  int fd;               /* -1 once closed */
  int armed;            /* the poll is started */
  int ud_gone;          /* the userdata was collected */
  int handle_closed;    /* the close callback has run */
  lua_State *waiter;    /* the task in ev:wait, anchored by the runtime's task table */
  int on_ref;           /* ev:on's function in the registry, or LUA_NOREF */
  int self_ref;         /* the userdata, anchored while a callback is set */
  lua_State *L;         /* the main thread, where callbacks are started */
} evfd;

typedef struct {
  evfd *e;
} evfd_ud;

static evfd_ud *eventfd_ud(lua_State *L, int idx) {
  return luaL_checkudata(L, idx, SHMH_EVENTFD);
}

/* The open object at idx; using a closed one raises. */
static evfd *eventfd_check(lua_State *L, int idx) {
  evfd_ud *u = eventfd_ud(L, idx);
  if (u->e == NULL || u->e->fd < 0) luaL_argerror(L, idx, "eventfd is closed");
  return u->e;
}

static void eventfd_close_cb(uv_handle_t *h) {
  evfd *e = shmh_container_of((uv_poll_t *)h, evfd, poll);
  e->handle_closed = 1;
  if (e->ud_gone) free(e);
}

static void eventfd_poll_cb(uv_poll_t *h, int status, int events);

/* Drops the callback and the anchor that kept an object with a callback alive: an eventfd
 * whose only reference is its own callback must go on calling it, not be collected. */
static void eventfd_drop_cb(evfd *e) {
  if (e->on_ref != LUA_NOREF) luaL_unref(e->L, LUA_REGISTRYINDEX, e->on_ref);
  if (e->self_ref != LUA_NOREF) luaL_unref(e->L, LUA_REGISTRYINDEX, e->self_ref);
  e->on_ref = e->self_ref = LUA_NOREF;
}

/* Watches the descriptor while someone wants its wake-ups. Between two waits the poll stays
 * started but unreferenced, so it neither keeps the loop alive nor costs two epoll_ctl calls
 * per wait (a ping-pong waits once per round trip); it is stopped only when it fires with no
 * one interested, since a level-triggered readable descriptor would fire again at once. */
static void eventfd_update(evfd *e) {
  if (e->fd < 0) return;
  int want = e->waiter != NULL || e->on_ref != LUA_NOREF;
  if (want && !e->armed) e->armed = uv_poll_start(&e->poll, UV_READABLE, eventfd_poll_cb) == 0;
  if (want) uv_ref((uv_handle_t *)&e->poll);
  else uv_unref((uv_handle_t *)&e->poll);
}

/* Resumes the waiting task, if any, with nil, "closed". */
static void eventfd_wake_closed(evfd *e) {
  lua_State *t = e->waiter;
  e->waiter = NULL;
  if (t == NULL || shmh_rt_exiting(e->L)) return;
  lua_pushnil(t);
  lua_pushliteral(t, "closed");
  shmh_rt_wake(t, 2);
}

/* Closes the descriptor and the handle; never raises. `wake` is false when called from __gc
 * (nothing can be waiting on an unreachable object except at lua_close). */
static void eventfd_shut(evfd *e, int wake) {
  if (e == NULL || e->fd < 0) return;
  int fd = e->fd;
  e->fd = -1;
  e->armed = 0;
  /* uv_close takes the descriptor out of epoll at once, so closing it next is safe. */
  uv_close((uv_handle_t *)&e->poll, eventfd_close_cb);
  close(fd);
  eventfd_drop_cb(e);
  if (wake) eventfd_wake_closed(e);
  else e->waiter = NULL;
}

static void eventfd_poll_cb(uv_poll_t *h, int status, int events) {
  evfd *e = shmh_container_of(h, evfd, poll);
  if (e->fd < 0) return;
  /* On an error libuv has stopped the handle already. */
  if (status < 0) e->armed = 0;
  /* Read only for someone: a count nobody asked for stays in the kernel for the next reader. */
  if (e->waiter == NULL && e->on_ref == LUA_NOREF) {
    uv_poll_stop(&e->poll);
    e->armed = 0;
    return;
  }
  uint64_t v = 0;
  int rc = status < 0 ? status : shmh_eventfd_try(e->fd, &v);
  /* Readable does not promise a count: another reader of the same eventfd (a peer process)
   * may have taken it first. Stay armed and wait for the next one. */
  if (rc == -EAGAIN) return;
  lua_State *L = e->L;
  if (e->waiter != NULL) {
    lua_State *t = e->waiter;
    e->waiter = NULL;
    eventfd_update(e);
    if (rc < 0) shmh_fail(t, -rc, "wait", "eventfd");
    else lua_pushinteger(t, (lua_Integer)v);
    shmh_rt_wake(t, rc < 0 ? 3 : 1);
  } else if (e->on_ref != LUA_NOREF) {
    if (rc < 0) {
      /* A failing descriptor would fire forever: tell the callback once and stop. */
      lua_rawgeti(L, LUA_REGISTRYINDEX, e->on_ref);
      eventfd_drop_cb(e);
      eventfd_update(e);
      shmh_rt_spawn(L, shmh_fail(L, -rc, "wait", "eventfd"));
      return;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, e->on_ref);
    lua_pushinteger(L, (lua_Integer)v);
    shmh_rt_spawn(L, 1);
  }
}

/* Wraps an open eventfd descriptor in a new object on the stack; on failure closes fd and
 * returns the `nil, msg, errno` count. */
static int eventfd_wrap(lua_State *L, int fd) {
  evfd_ud *u = lua_newuserdatauv(L, sizeof *u, 0);
  u->e = NULL;
  luaL_setmetatable(L, SHMH_EVENTFD);
  evfd *e = calloc(1, sizeof *e);
  if (e == NULL) {
    close(fd);
    lua_pop(L, 1);
    return shmh_fail(L, ENOMEM, "eventfd", NULL);
  }
  e->fd = -1;
  e->on_ref = e->self_ref = LUA_NOREF;
  e->L = shmh_rt_main(L);
  /* uv_poll needs a non-blocking descriptor. For a received eventfd this flag is shared with
   * the sender's copy (one open file description); eventfd writes are unaffected by it. */
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0 && !(fl & O_NONBLOCK)) fcntl(fd, F_SETFL, fl | O_NONBLOCK);
  int rc = uv_poll_init(shmh_rt_loop(L), &e->poll, fd);
  if (rc < 0) {
    free(e);
    close(fd);
    lua_pop(L, 1);
    return shmh_fail(L, -rc, "uv_poll_init", "eventfd");
  }
  e->poll.data = NULL;
  e->fd = fd;
  u->e = e;
  return 1;
}

/* shm.eventfd{init=0, semaphore=false} */
static int eventfd_new(lua_State *L) {
  static const char *const known[] = {"init", "semaphore", NULL};
  shmh_check_options(L, 1, known);
  lua_Integer init = shmh_opt_integer(L, 1, "init", 0);
  int sem = shmh_opt_bool(L, 1, "semaphore", 0);
  luaL_argcheck(L, init >= 0 && init <= UINT32_MAX, 1, "option 'init' must be 0 .. 2^32-1");
  int fd = shmh_eventfd_open((unsigned int)init, sem);
  if (fd < 0) return shmh_fail(L, -fd, "eventfd", NULL);
  return eventfd_wrap(L, fd);
}

static int eventfd_notify(lua_State *L) {
  evfd *e = eventfd_check(L, 1);
  lua_Integer n = luaL_optinteger(L, 2, 1);
  luaL_argcheck(L, n >= 1, 2, "count must be a positive integer");
  int rc = shmh_eventfd_notify(e->fd, (uint64_t)n);
  if (rc < 0) return shmh_fail(L, -rc, "notify", "eventfd");
  lua_pushboolean(L, 1);
  return 1;
}

static int eventfd_try(lua_State *L) {
  evfd *e = eventfd_check(L, 1);
  uint64_t v;
  int rc = shmh_eventfd_try(e->fd, &v);
  if (rc == -EAGAIN) {
    lua_pushnil(L);
    return 1;
  }
  if (rc < 0) return shmh_fail(L, -rc, "try", "eventfd");
  lua_pushinteger(L, (lua_Integer)v);
  return 1;
}

static int eventfd_wait(lua_State *L) {
  evfd *e = eventfd_check(L, 1);
  shmh_rt_task(L, "ev:wait");
  if (e->waiter != NULL) return luaL_error(L, "ev:wait: another task is already waiting on this eventfd");
  if (e->on_ref != LUA_NOREF) return luaL_error(L, "ev:wait: the eventfd has a callback (ev:on); stop it with ev:on(nil) first");
  uint64_t v;
  int rc = shmh_eventfd_try(e->fd, &v);
  /* Spin briefly before sleeping in the loop (SHMH_WAIT_SPIN says why). */
  if (rc == -EAGAIN) {
    double until = shmh_rt_now() + SHMH_WAIT_SPIN;
    while (rc == -EAGAIN && shmh_rt_now() < until) {
      for (int i = 0; i < 16; i++) shmh_cpu_relax();
      rc = shmh_eventfd_try(e->fd, &v);
    }
  }
  if (rc == 0) {
    lua_pushinteger(L, (lua_Integer)v);
    return 1;
  }
  if (rc != -EAGAIN) return shmh_fail(L, -rc, "wait", "eventfd");
  e->waiter = L;
  eventfd_update(e);
  if (!e->armed) {
    e->waiter = NULL;
    return shmh_fail(L, EIO, "uv_poll_start", "eventfd");
  }
  return shmh_rt_yield(L);
}

static int eventfd_on(lua_State *L) {
  evfd *e = eventfd_check(L, 1);
  if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TFUNCTION);
  if (e->waiter != NULL && !lua_isnoneornil(L, 2))
    return luaL_error(L, "ev:on: a task is waiting in ev:wait on this eventfd");
  eventfd_drop_cb(e);
  if (!lua_isnoneornil(L, 2)) {
    lua_pushvalue(L, 2);
    e->on_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, 1);
    e->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  eventfd_update(e);
  lua_pushboolean(L, 1);
  return 1;
}

static int eventfd_fdm(lua_State *L) {
  lua_pushinteger(L, eventfd_check(L, 1)->fd);
  return 1;
}

static int eventfd_close(lua_State *L) {
  evfd_ud *u = eventfd_ud(L, 1);
  eventfd_shut(u->e, 1);
  lua_pushboolean(L, 1);
  return 1;
}

static int eventfd_gc(lua_State *L) {
  evfd_ud *u = eventfd_ud(L, 1);
  evfd *e = u->e;
  if (e == NULL) return 0;
  u->e = NULL;
  eventfd_shut(e, 0);
  e->ud_gone = 1;
  if (e->handle_closed) free(e);
  return 0;
}

/* __close: like close(), but a to-be-closed variable may also be left by an error. */
static int eventfd_tbc(lua_State *L) {
  evfd_ud *u = eventfd_ud(L, 1);
  eventfd_shut(u->e, 1);
  return 0;
}

static int eventfd_tostring(lua_State *L) {
  evfd_ud *u = eventfd_ud(L, 1);
  if (u->e == NULL || u->e->fd < 0) lua_pushliteral(L, SHMH_EVENTFD " (closed)");
  else lua_pushfstring(L, SHMH_EVENTFD " (fd %d)", u->e->fd);
  return 1;
}

int shmh_eventfd_push_fd(lua_State *L, int fd) { return eventfd_wrap(L, fd); }

int shmh_eventfd_fd(lua_State *L, int idx) { return eventfd_check(L, idx)->fd; }

void shmh_bind_eventfd(lua_State *L) {
  static const luaL_Reg methods[] = {
    {"notify", eventfd_notify}, {"wait", eventfd_wait}, {"try", eventfd_try},
    {"on", eventfd_on}, {"fd", eventfd_fdm}, {"close", eventfd_close}, {NULL, NULL}};
  static const luaL_Reg meta[] = {
    {"__gc", eventfd_gc}, {"__close", eventfd_tbc}, {"__tostring", eventfd_tostring},
    {NULL, NULL}};
  shmh_newtype(L, SHMH_EVENTFD, methods, meta);
  lua_pushcfunction(L, eventfd_new);
  lua_setfield(L, -2, "eventfd");
}
