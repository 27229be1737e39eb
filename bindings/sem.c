/*
 * shmhost.sem: a POSIX semaphore, unnamed in a segment (shm.sem) or named (shm.sem_open).
 *
 * sem:wait() in a task never blocks the loop. It first tries sem_trywait; when that would
 * block, the wait moves to a thread of this object's own (not libuv's pool: four parked waits
 * would starve every file operation), which waits in short sem_clockwait slices so it can be
 * told to stop, and hands the result back through a uv_async_t. The thread took the unit, so
 * the task is simply resumed with `true`. The thread is started at the first wait that blocks
 * and lives until the object is closed or collected; closing stops and joins it.
 *
 * The thread's state lives in a heap block, not in the userdata: libuv needs the async handle
 * until its close callback has run, which can be after the userdata is gone.
 *
 * For a semaphore in a segment, the thread waits on a mapping of its own of the same object
 * (the descriptor duplicated, or the System V segment attached again): a script may close the
 * segment while the thread is inside sem_clockwait, and a page unmapped under a running
 * thread would be a SIGSEGV. That mapping goes through the segment core like any other, so
 * the SIGBUS guard covers it when a peer truncates the object.
 */
#include "bind.h"
#include "cleanup.h"
#include "seg.h"
#include "sync.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SLICE 0.05 /* seconds the thread waits before it looks at `stop` again */
#define IDLE 2      /* seconds an idle thread stays for the next wait before it ends */

typedef struct semw {
  uv_async_t async;     /* data stays NULL: the runtime tells our handles from luv's that way */
  pthread_mutex_t lk;   /* guards everything below that the thread reads or writes */
  pthread_cond_t cv;
  pthread_t thread;
  int has_thread;
  int exited;           /* the thread ended after being idle; join it before the next wait */
  int claimed;          /* the loop is preparing a request: an idle thread must not end now */
  sem_t *sem;           /* what the thread waits on */
  shmh_seg own;         /* unnamed: the thread's own mapping of the segment (kind NONE if none) */
  double deadline;      /* monotonic seconds, or < 0 for none */
  int request;          /* a wait is asked for */
  int stop;             /* the thread must end */
  int done;             /* the wait ended with `result` and the async was sent */
  int result;           /* 0: the thread took a unit; -ETIMEDOUT; -errno */
  /* loop thread only */
  lua_State *waiter;    /* the task in sem:wait, anchored by the runtime's task table */
  int ud_gone;
  int handle_closed;
} semw;

typedef struct {
  semw *w;              /* NULL until a wait first blocks */
  int open;
  int named;            /* sem_open'd: `nsem` is ours to sem_close */
  sem_t *nsem;
  lua_Integer off;      /* unnamed: the offset in the segment (user value 1) */
  int cleanup;          /* handle in the cleanup registry, 0 when none */
  int created;
  char name[NAME_MAX + 2];
} sem_ud;

static double mono_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ------------------------------------------------------------ the waiting thread */

static void *sem_worker(void *arg) {
  semw *w = arg;
  pthread_mutex_lock(&w->lk);
  for (;;) {
    /* An object reached through a layout view is a new object at every access: threads of
     * objects that wait once and then lie around until collected must not pile up. */
    struct timespec idle;
    clock_gettime(CLOCK_MONOTONIC, &idle);
    idle.tv_sec += IDLE;
    int rc = 0;
    while (!w->stop && !w->request && (rc != ETIMEDOUT || w->claimed)) {
      if (rc == ETIMEDOUT) idle.tv_sec += IDLE; /* claimed: a request is on its way */
      rc = pthread_cond_timedwait(&w->cv, &w->lk, &idle);
    }
    if (w->stop) break;
    if (!w->request) {
      /* Idle: end, and let the mapping go with the thread (the loop maps again for the next
       * wait after it has joined us). */
      shmh_seg_close(&w->own);
      w->exited = 1;
      break;
    }
    sem_t *s = w->sem;
    double deadline = w->deadline;
    pthread_mutex_unlock(&w->lk);
    int stop = 0;
    for (;;) {
      double slice = SLICE;
      if (deadline >= 0) {
        double left = deadline - mono_now();
        if (left <= 0) {
          rc = -ETIMEDOUT;
          break;
        }
        if (left < slice) slice = left;
      }
      rc = shmh_sem_timedwait(s, slice);
      /* A peer truncated the object: the guard mapped zeros over it, nothing can post. */
      if (w->own.broken) {
        rc = -EFAULT;
        break;
      }
      if (rc != -ETIMEDOUT) break;
      pthread_mutex_lock(&w->lk);
      stop = w->stop;
      pthread_mutex_unlock(&w->lk);
      if (stop) break;
    }
    pthread_mutex_lock(&w->lk);
    w->request = 0;
    w->result = rc;
    w->done = 1;
    if (!w->stop) uv_async_send(&w->async);
  }
  pthread_mutex_unlock(&w->lk);
  return NULL;
}

static void semw_close_cb(uv_handle_t *h) {
  semw *w = shmh_container_of((uv_async_t *)h, semw, async);
  w->handle_closed = 1;
  if (w->ud_gone) free(w);
}

/* Gives back a unit the thread took for a wait nobody collects any more. */
static void semw_give_back(semw *w) {
  if (w->done && w->result == 0 && w->sem != NULL) shmh_sem_post(w->sem);
  w->done = 0;
}

/* The value a wait resumes with when the segment was truncated; sem_wait_k raises then. */
static const char TRUNCATED = 't';

static void semw_async_cb(uv_async_t *a) {
  semw *w = shmh_container_of(a, semw, async);
  pthread_mutex_lock(&w->lk);
  int done = w->done, rc = w->result;
  w->done = 0;
  pthread_mutex_unlock(&w->lk);
  if (!done) return;
  lua_State *t = w->waiter;
  w->waiter = NULL;
  uv_unref((uv_handle_t *)a);
  if (t == NULL) {
    if (rc == 0) shmh_sem_post(w->sem);
    return;
  }
  if (rc == 0) {
    lua_pushboolean(t, 1);
    shmh_rt_wake(t, 1);
  } else if (rc == -ETIMEDOUT) {
    lua_pushnil(t);
    lua_pushliteral(t, "timeout");
    lua_pushinteger(t, ETIMEDOUT);
    shmh_rt_wake(t, 3);
  } else if (rc == -EFAULT) {
    lua_pushlightuserdata(t, (void *)&TRUNCATED);
    shmh_rt_wake(t, 1);
  } else {
    shmh_rt_wake(t, shmh_fail(t, -rc, "sem_wait", "semaphore"));
  }
}

/* Stops and joins the thread, closes the handle, and resumes a waiting task with
 * nil, "closed" (when `wake`). Never raises. The semaphore memory must still be mapped. */
static void semw_shut(semw *w, int wake) {
  if (w == NULL) return;
  if (w->has_thread) {
    pthread_mutex_lock(&w->lk);
    w->stop = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->lk);
    /* At most one slice: the thread looks at `stop` after every sem_clockwait. */
    pthread_join(w->thread, NULL);
    w->has_thread = 0;
  }
  semw_give_back(w);
  shmh_seg_close(&w->own);
  pthread_mutex_destroy(&w->lk);
  pthread_cond_destroy(&w->cv);
  uv_close((uv_handle_t *)&w->async, semw_close_cb);
  lua_State *t = w->waiter;
  w->waiter = NULL;
  if (t != NULL && wake) {
    lua_pushnil(t);
    lua_pushliteral(t, "closed");
    shmh_rt_wake(t, 2);
  }
}

static semw *semw_new(lua_State *L) {
  semw *w = calloc(1, sizeof *w);
  if (w == NULL) return NULL;
  if (uv_async_init(shmh_rt_loop(L), &w->async, semw_async_cb) != 0) {
    free(w);
    return NULL;
  }
  w->async.data = NULL;
  shmh_seg_init(&w->own);
  /* An idle semaphore must not keep the process alive: referenced only while a task waits. */
  uv_unref((uv_handle_t *)&w->async);
  pthread_mutex_init(&w->lk, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&w->cv, &ca);
  pthread_condattr_destroy(&ca);
  return w;
}

/* ------------------------------------------------------------ the object */

static sem_ud *sem_ud_at(lua_State *L, int idx) { return luaL_checkudata(L, idx, SHMH_SEM); }

static sem_ud *sem_check(lua_State *L, int idx) {
  sem_ud *u = sem_ud_at(L, idx);
  if (!u->open) luaL_argerror(L, idx, "semaphore is closed");
  return u;
}

static const char *sem_label(lua_State *L, sem_ud *u) {
  if (u->named) return lua_pushstring(L, u->name);
  return lua_pushfstring(L, "semaphore at offset %I", u->off);
}

/* The semaphore of the object at index 1, checked for `verb` (NULL: reading only). Pushes
 * the segment (or nil for a named one) for sem_done to check and pop. */
static sem_t *sem_ptr(lua_State *L, const char *verb, shmh_seg **segp) {
  sem_ud *u = sem_check(L, 1);
  *segp = NULL;
  if (u->named) {
    lua_pushnil(L);
    return u->nsem;
  }
  lua_getiuservalue(L, 1, 1);
  int t = lua_gettop(L);
  shmh_seg *seg = luaL_testudata(L, t, SHMH_SEGMENT); /* a shmh_seg heads the userdata */
  if (seg == NULL || seg->kind == SHMH_SEG_NONE)
    luaL_error(L, "semaphore at offset %I: its segment is closed", u->off);
  if (verb && seg->readonly)
    luaL_error(L, "cannot %s a semaphore in a read-only mapping (a semaphore needs PROT_WRITE)", verb);
  sem_t *s = shmh_segment_ptr(L, t, u->off, sizeof(sem_t), verb != NULL, 0);
  *segp = seg;
  return s;
}

static void sem_done(lua_State *L, shmh_seg *seg) {
  if (seg) shmh_segment_touched(L, seg);
  lua_pop(L, 1);
}

static int sem_init_m(lua_State *L) {
  sem_ud *u = sem_check(L, 1);
  lua_Integer v = luaL_optinteger(L, 2, 0);
  luaL_argcheck(L, v >= 0 && v <= SEM_VALUE_MAX, 2, "value must be 0 .. SEM_VALUE_MAX");
  if (u->w && u->w->waiter)
    luaL_error(L, "s:init: a task is waiting on this semaphore");
  lua_settop(L, 2);
  shmh_seg *seg;
  sem_t *s = sem_ptr(L, "initialize", &seg);
  int rc = shmh_sem_init(s, (unsigned int)v);
  sem_done(L, seg);
  if (rc < 0) return shmh_fail(L, -rc, "sem_init", sem_label(L, u));
  lua_pushboolean(L, 1);
  return 1;
}

static int sem_post_m(lua_State *L) {
  sem_ud *u = sem_check(L, 1);
  shmh_seg *seg;
  sem_t *s = sem_ptr(L, "post", &seg);
  int rc = shmh_sem_post(s);
  sem_done(L, seg);
  if (rc < 0) return shmh_fail(L, -rc, "sem_post", sem_label(L, u));
  lua_pushboolean(L, 1);
  return 1;
}

static int sem_trywait_m(lua_State *L) {
  sem_ud *u = sem_check(L, 1);
  shmh_seg *seg;
  sem_t *s = sem_ptr(L, "wait on", &seg);
  int rc = shmh_sem_trywait(s);
  sem_done(L, seg);
  if (rc == -EAGAIN) {
    lua_pushboolean(L, 0);
    lua_pushliteral(L, "busy");
    return 2;
  }
  if (rc < 0) return shmh_fail(L, -rc, "sem_trywait", sem_label(L, u));
  lua_pushboolean(L, 1);
  return 1;
}

static int sem_value_m(lua_State *L) {
  sem_ud *u = sem_check(L, 1);
  shmh_seg *seg;
  sem_t *s = sem_ptr(L, NULL, &seg);
  int v = 0;
  int rc = shmh_sem_getvalue(s, &v);
  sem_done(L, seg);
  if (rc < 0) return shmh_fail(L, -rc, "sem_getvalue", sem_label(L, u));
  lua_pushinteger(L, v);
  return 1;
}

/* The thread's own mapping of the segment `seg` (see the top of the file). */
static int semw_map(semw *w, shmh_seg *seg) {
  if (w->own.kind != SHMH_SEG_NONE) return 0;
  return shmh_seg_map_again(&w->own, seg, 0);
}

/* Runs the yield in a function of its own, so that sem_wait_k sees the results. */
static int sem_park(lua_State *L) { return shmh_rt_yield(L); }

/* Stack: 1 self, 2 timeout, then what the wait resumed with. */
static int sem_wait_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  if (lua_touserdata(L, 3) == (void *)&TRUNCATED)
    return luaL_error(L, "%s: its segment was truncated by a peer",
                      sem_label(L, sem_ud_at(L, 1)));
  return lua_gettop(L) - 2;
}

/* s:wait([timeout]) -> true | nil, "timeout", ETIMEDOUT | nil, "closed" | nil, msg, errno */
static int sem_wait_m(lua_State *L) {
  sem_ud *u = sem_check(L, 1);
  int timed = !lua_isnoneornil(L, 2);
  double timeout = shmh_check_seconds(L, 2, 0);
  lua_settop(L, 2);
  /* A wait that may block needs a task whether or not this one would have to, so a misuse
   * shows at once rather than on the day the post comes late; wait(0) is a try. */
  if (!(timed && timeout <= 0)) shmh_rt_task(L, "s:wait");
  shmh_seg *seg;
  sem_t *s = sem_ptr(L, "wait on", &seg);
  int rc = shmh_sem_trywait(s);
  /* Spin briefly before handing off to the thread (SHMH_WAIT_SPIN says why). */
  if (rc == -EAGAIN && !(timed && timeout <= 0)) {
    double until = mono_now() + SHMH_WAIT_SPIN;
    while (rc == -EAGAIN && mono_now() < until) {
      for (int i = 0; i < 64; i++) shmh_cpu_relax();
      rc = shmh_sem_trywait(s);
    }
  }
  sem_done(L, seg);
  if (rc == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  if (rc != -EAGAIN) return shmh_fail(L, -rc, "sem_trywait", sem_label(L, u));
  if (timed && timeout <= 0) return shmh_timeout(L);
  if (u->w && u->w->waiter)
    return luaL_error(L, "s:wait: another task is already waiting on this semaphore object "
                         "(give each task its own object for the same semaphore)");
  if (u->w == NULL && (u->w = semw_new(L)) == NULL)
    return shmh_fail(L, ENOMEM, "s:wait", sem_label(L, u));
  semw *w = u->w;
  /* Claim the thread first, so that it cannot end for idleness (unmapping its mapping) while
   * the mapping is looked at here; one that has ended already is joined. */
  pthread_mutex_lock(&w->lk);
  int exited = w->exited;
  w->exited = 0;
  w->claimed = 1;
  pthread_mutex_unlock(&w->lk);
  if (exited && w->has_thread) {
    pthread_join(w->thread, NULL); /* it has ended already: no wait */
    w->has_thread = 0;
  }
  sem_t *ws = s;
  if (seg != NULL) {
    rc = semw_map(w, seg);
    if (rc == 0 && !shmh_seg_in_bounds(&w->own, (uint64_t)u->off, sizeof(sem_t))) rc = -ERANGE;
    if (rc < 0) {
      pthread_mutex_lock(&w->lk);
      w->claimed = 0;
      pthread_mutex_unlock(&w->lk);
      return shmh_fail(L, -rc, "s:wait: map", sem_label(L, u));
    }
    ws = (sem_t *)((char *)w->own.addr + u->off);
  }
  pthread_mutex_lock(&w->lk);
  w->sem = ws;
  w->deadline = timed ? mono_now() + timeout : -1;
  w->done = 0;
  w->request = 1;
  w->claimed = 0;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->lk);
  if (!w->has_thread) {
    int err = pthread_create(&w->thread, NULL, sem_worker, w);
    if (err != 0) {
      w->request = 0;
      return shmh_fail(L, err, "pthread_create", sem_label(L, u));
    }
    w->has_thread = 1;
  }
  w->waiter = L;
  uv_ref((uv_handle_t *)&w->async);
  lua_pushcfunction(L, sem_park);
  lua_callk(L, 0, LUA_MULTRET, 0, sem_wait_k);
  return sem_wait_k(L, LUA_OK, 0);
}

/* Never raises: serves close() (remove = 1), __gc and __close. */
static void sem_shut(lua_State *L, int idx, int remove, int wake) {
  sem_ud *u = sem_ud_at(L, idx);
  if (!u->open) return;
  u->open = 0;
  /* The thread must be gone before the memory it waits on can go: stop it first. */
  semw_shut(u->w, wake);
  if (u->w) {
    u->w->ud_gone = 1;
    if (u->w->handle_closed) free(u->w);
    u->w = NULL;
  }
  if (u->named && u->nsem) {
    shmh_sem_close(u->nsem);
    u->nsem = NULL;
  }
  if (u->cleanup > 0) {
    if (remove) shmh_cleanup_remove(u->cleanup);
    u->cleanup = 0;
  }
  lua_pushnil(L);
  lua_setiuservalue(L, idx, 1);
}

static int sem_close_m(lua_State *L) {
  sem_shut(L, 1, 1, 1);
  lua_pushboolean(L, 1);
  return 1;
}

/* Only closes: a created named semaphore that was never closed is removed at exit. Nothing
 * can be waiting on an unreachable object except at lua_close, where no task resumes. */
static int sem_gc(lua_State *L) {
  sem_shut(L, 1, 0, 0);
  return 0;
}

static int sem_tbc(lua_State *L) {
  sem_shut(L, 1, 1, 1);
  return 0;
}

/* s:keep(): a created named semaphore outlives this process. */
static int sem_keep_m(lua_State *L) {
  sem_ud *u = sem_check(L, 1);
  if (u->cleanup > 0) shmh_cleanup_forget(u->cleanup);
  u->cleanup = 0;
  lua_pushboolean(L, 1);
  return 1;
}

/* s:unlink(): removes the name now (the object stays usable until closed). */
static int sem_unlink_m(lua_State *L) {
  sem_ud *u = sem_check(L, 1);
  luaL_argcheck(L, u->named, 1, "only a named semaphore (shm.sem_open) has a name to remove");
  int rc;
  if (u->cleanup > 0) {
    rc = shmh_cleanup_remove(u->cleanup);
    u->cleanup = 0;
  } else {
    rc = shmh_sem_unlink(u->name);
  }
  if (rc < 0) return shmh_fail(L, -rc, "sem_unlink", u->name);
  lua_pushboolean(L, 1);
  return 1;
}

static int sem_tostring(lua_State *L) {
  sem_ud *u = sem_ud_at(L, 1);
  if (!u->open) lua_pushliteral(L, SHMH_SEM " (closed)");
  else if (u->named) lua_pushfstring(L, SHMH_SEM " (%s)", u->name);
  else lua_pushfstring(L, SHMH_SEM " (offset %I)", u->off);
  return 1;
}

/* s.name, s.created for a named semaphore; methods first. */
static int sem_index(lua_State *L) {
  sem_ud *u = sem_ud_at(L, 1);
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL || lua_type(L, 2) != LUA_TSTRING) return 1;
  const char *k = lua_tostring(L, 2);
  if (strcmp(k, "name") == 0 && u->named) lua_pushstring(L, u->name);
  else if (strcmp(k, "created") == 0) lua_pushboolean(L, u->created);
  else lua_pushnil(L);
  return 1;
}

static sem_ud *sem_newud(lua_State *L) {
  sem_ud *u = lua_newuserdatauv(L, sizeof *u, 1);
  memset(u, 0, sizeof *u);
  luaL_setmetatable(L, SHMH_SEM);
  return u;
}

static void sem_push_at(lua_State *L, int segidx, lua_Integer off) {
  segidx = lua_absindex(L, segidx);
  sem_ud *u = sem_newud(L);
  u->off = off;
  lua_pushvalue(L, segidx);
  lua_setiuservalue(L, -2, 1);
  u->open = 1;
}

/* shm.sem(seg, off): the unnamed semaphore at byte offset `off` (s:init(value) once). */
static int sem_new_api(lua_State *L) {
  luaL_checkudata(L, 1, SHMH_SEGMENT);
  lua_Integer off = luaL_checkinteger(L, 2);
  shmh_segment_ptr(L, 1, off, sizeof(sem_t), 0, 2);
  shmh_check_aligned(L, 2, off, _Alignof(sem_t), "sem_t");
  sem_push_at(L, 1, off);
  return 1;
}

/* shm.sem_open("/name", {create=false, excl=false, value=0, mode="0600", keep=false}) */
static int sem_open_api(lua_State *L) {
  static const char *const known[] = {"create", "excl", "value", "mode", "keep", NULL};
  size_t len;
  luaL_checktype(L, 1, LUA_TSTRING); /* a number is not a name, even if Lua would convert it */
  const char *name = lua_tolstring(L, 1, &len);
  const char *why = NULL;
  if (len < 2 || name[0] != '/') why = "must start with '/' followed by a name";
  else if (strlen(name) != len) why = "must not contain a NUL byte";
  else if (strchr(name + 1, '/') != NULL) why = "must not contain '/' after the first";
  /* glibc stores it as /dev/shm/sem.NAME: the 4 bytes of "sem." count against NAME_MAX. */
  else if (len - 1 + 4 > NAME_MAX) why = "is too long";
  if (why) luaL_argerror(L, 1, lua_pushfstring(L, "semaphore name \"%s\" %s", name, why));
  shmh_check_options(L, 2, known);
  struct shmh_sem_open_opts o;
  o.create = shmh_opt_bool(L, 2, "create", 0);
  o.excl = shmh_opt_bool(L, 2, "excl", 0);
  lua_Integer v = shmh_opt_integer(L, 2, "value", 0);
  if (v < 0 || v > SEM_VALUE_MAX) luaL_argerror(L, 2, "option 'value' must be 0 .. SEM_VALUE_MAX");
  o.value = (unsigned int)v;
  o.mode = shmh_opt_mode(L, 2, "mode", 0600);
  int keep = shmh_opt_bool(L, 2, "keep", 0);

  sem_ud *u = sem_newud(L);
  u->named = 1;
  memcpy(u->name, name, len + 1);
  int created = 0;
  int rc = shmh_sem_open(&u->nsem, name, &o, &created);
  if (rc < 0) return shmh_fail(L, -rc, "sem_open", name);
  u->created = created;
  u->open = 1;
  if (created && !keep) {
    int h = shmh_cleanup_add(SHMH_CLEANUP_POSIX_SEM, name, 0);
    if (h < 0) {
      shmh_sem_unlink(name);
      sem_shut(L, -1, 0, 0);
      return shmh_fail(L, -h, "cleanup", name);
    }
    u->cleanup = h;
  }
  return 1;
}

void shmh_sem_push(lua_State *L, int segidx, lua_Integer off) { sem_push_at(L, segidx, off); }

void shmh_bind_sem(lua_State *L) {
  static const luaL_Reg methods[] = {
    {"init", sem_init_m},   {"post", sem_post_m},     {"wait", sem_wait_m},
    {"trywait", sem_trywait_m}, {"value", sem_value_m}, {"keep", sem_keep_m},
    {"unlink", sem_unlink_m}, {"close", sem_close_m}, {NULL, NULL}};
  static const luaL_Reg meta[] = {
    {"__gc", sem_gc}, {"__close", sem_tbc}, {"__tostring", sem_tostring}, {NULL, NULL}};
  luaL_newmetatable(L, SHMH_SEM);
  luaL_setfuncs(L, meta, 0);
  lua_newtable(L);
  luaL_setfuncs(L, methods, 0);
  lua_pushcclosure(L, sem_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);

  lua_pushcfunction(L, sem_new_api);
  lua_setfield(L, -2, "sem");
  lua_pushcfunction(L, sem_open_api);
  lua_setfield(L, -2, "sem_open");
  lua_pushinteger(L, (lua_Integer)sizeof(sem_t));
  lua_setfield(L, -2, "SEM_SIZE");
  lua_pushinteger(L, SEM_VALUE_MAX);
  lua_setfield(L, -2, "SEM_VALUE_MAX");
}
