/*
 * The runtime: the Lua state, the uv loop, the task scheduler, signals and shutdown.
 *
 * One runtime per process. Tasks are coroutines anchored in a registry table (TASKS) that maps
 * each task's thread to its state; a task that waits yields from a C function, and the event
 * that ends the wait resumes it from the loop. Lua code never runs inside another task's
 * resume: a wake that arrives while Lua is running is queued and drained by an idle handle.
 *
 * Shutdown (shmh_rt_finish) removes what the process created, closes luv's handles while the
 * Lua state can still run their close callbacks, closes the Lua state (whose __gc metamethods
 * close the bindings' handles and join their threads), closes the runtime's own handles and
 * runs the loop until uv_loop_close succeeds.
 */
#include "runtime.h"
#include "runtime_internal.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>
#include <luv/luv.h>
#include <luv/lhandle.h>

#include "bind.h"
#include "cleanup.h"

/* What TASKS maps a task's thread to. */
enum task_state {
  TASK_RUNNING = 1, /* running */
  TASK_QUEUED,      /* in the ready queue */
  TASK_WAITING,     /* yielded through shmh_rt_yield; a binding will wake it */
  TASK_SUSPENDED    /* yielded through shmhost.suspend; shmhost.resume wakes it */
};

struct wake {
  lua_State *task;
  int nargs;
};

struct sleeper {
  uv_timer_t timer;
  lua_State *task;
  struct sleeper *next, *prev;
};

static struct {
  lua_State *L;
  uv_loop_t loop;
  int loop_ready;
  uv_idle_t idle;
  uv_signal_t signals[3];
  int depth;          /* > 0 while Lua code runs under the runtime */
  int exiting;
  int exit_code;
  struct wake *queue; /* the ready queue: a growable ring */
  size_t qhead, qlen, qcap;
  struct sleeper *sleepers;
} rt;

static const int caught_signals[3] = {SIGINT, SIGTERM, SIGHUP};

/* The error value shmhost.exit raises outside a task: it ends Lua code without a message. */
static const char exit_sentinel = 0;

static const char TASKS_KEY = 0;

/* ---------------------------------------------------------------- errors */

/* Message handler: the error message followed by a traceback of the failing thread. */
static int rt_msgh(lua_State *L) {
  if (lua_touserdata(L, 1) == &exit_sentinel) return 1;
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) msg = lua_tostring(L, -1);
    else msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

static void rt_report(const char *text) {
  fflush(stdout);
  fprintf(stderr, "shmhost: %s\n", text);
  fflush(stderr);
}

void shmh_rt_request_exit(int code) {
  if (!rt.exiting) {
    rt.exiting = 1;
    rt.exit_code = code;
  }
  if (rt.loop_ready) uv_stop(&rt.loop);
}

/* ---------------------------------------------------------------- tasks */

static void tasks_push(lua_State *L) { lua_rawgetp(L, LUA_REGISTRYINDEX, &TASKS_KEY); }

/* The thread is pushed on its own stack, then moved to the main thread's: a suspended task
 * may sit at the end of the slots its C function was given. */
static int task_state(lua_State *task) {
  lua_State *L = rt.L;
  if (!lua_checkstack(task, 1)) return 0;
  tasks_push(L);
  lua_pushthread(task);
  lua_xmove(task, L, 1);
  lua_rawget(L, -2);
  int st = (int)lua_tointeger(L, -1);
  lua_pop(L, 2);
  return st;
}

static void task_set(lua_State *task, int state) {
  lua_State *L = rt.L;
  luaL_checkstack(task, 1, "task state");
  tasks_push(L);
  lua_pushthread(task);
  lua_xmove(task, L, 1);
  if (state) lua_pushinteger(L, state);
  else lua_pushnil(L);
  lua_rawset(L, -3);
  lua_pop(L, 1);
}

static void rt_idle_cb(uv_idle_t *idle);

static void queue_push(lua_State *task, int nargs) {
  if (rt.qlen == rt.qcap) {
    size_t ncap = rt.qcap ? rt.qcap * 2 : 64;
    struct wake *nq = malloc(ncap * sizeof *nq);
    if (nq == NULL) {
      rt_report("out of memory in the task queue");
      abort();
    }
    for (size_t i = 0; i < rt.qlen; i++) nq[i] = rt.queue[(rt.qhead + i) % rt.qcap];
    free(rt.queue);
    rt.queue = nq;
    rt.qcap = ncap;
    rt.qhead = 0;
  }
  rt.queue[(rt.qhead + rt.qlen) % rt.qcap] = (struct wake){task, nargs};
  rt.qlen++;
  if (!uv_is_active((uv_handle_t *)&rt.idle)) uv_idle_start(&rt.idle, rt_idle_cb);
}

/* Resumes `task` with the top nargs values of its stack, and deals with how it stops. */
static void task_resume(lua_State *task, int nargs) {
  int nres = 0;
  rt.depth++;
  int status = lua_resume(task, rt.L, nargs, &nres);
  rt.depth--;
  if (status == LUA_YIELD) {
    lua_pop(task, nres);
    /* A plain coroutine.yield() inside a task gives the other tasks a turn. */
    if (task_state(task) == TASK_RUNNING && !rt.exiting) {
      task_set(task, TASK_QUEUED);
      queue_push(task, 0);
    }
    return;
  }
  if (status != LUA_OK && lua_touserdata(task, -1) != &exit_sentinel) {
    lua_State *L = rt.L;
    const char *msg = NULL;
    if (luaL_callmeta(task, -1, "__tostring") && lua_type(task, -1) == LUA_TSTRING) {
      msg = lua_tostring(task, -1);
    } else {
      msg = lua_tostring(task, -1);
    }
    if (msg == NULL) msg = lua_pushfstring(task, "(error object is a %s value)", luaL_typename(task, -1));
    luaL_traceback(L, task, msg, 0);
    rt_report(lua_tostring(L, -1));
    lua_pop(L, 1);
    shmh_rt_request_exit(1);
  }
  /* Finished or failed: close its pending to-be-closed variables and let it be collected. */
  lua_settop(task, 0);
  if (status != LUA_OK) lua_resetthread(task);
  task_set(task, 0);
}

static void rt_idle_cb(uv_idle_t *idle) {
  /* Run what was queued before this pass; what these tasks queue runs on the next one, so a
   * task that yields in a loop cannot starve I/O. */
  size_t n = rt.qlen;
  while (n-- > 0 && rt.qlen > 0 && !rt.exiting) {
    struct wake w = rt.queue[rt.qhead];
    rt.qhead = (rt.qhead + 1) % rt.qcap;
    rt.qlen--;
    task_set(w.task, TASK_RUNNING);
    task_resume(w.task, w.nargs);
  }
  if (rt.qlen == 0 || rt.exiting) uv_idle_stop(idle);
}

int shmh_rt_in_task(lua_State *L) {
  return L != rt.L && task_state(L) != 0;
}

lua_State *shmh_rt_task(lua_State *L, const char *what) {
  if (!shmh_rt_in_task(L))
    luaL_error(L, "%s: cannot wait outside a task (start one with shmhost.spawn)", what);
  if (!lua_isyieldable(L))
    luaL_error(L, "%s: cannot wait here (inside a C call that cannot yield)", what);
  return L;
}

int shmh_rt_yield(lua_State *L) {
  task_set(L, TASK_WAITING);
  return lua_yield(L, 0);
}

void shmh_rt_wake(lua_State *task, int n) {
  if (rt.exiting || task_state(task) != TASK_WAITING) {
    lua_pop(task, n);
    return;
  }
  if (rt.depth == 0) {
    task_set(task, TASK_RUNNING);
    task_resume(task, n);
  } else {
    task_set(task, TASK_QUEUED);
    queue_push(task, n);
  }
}

static lua_State *spawn_task(lua_State *L, int n) {
  lua_State *task = lua_newthread(L);
  lua_insert(L, -(n + 2));
  lua_xmove(L, task, n + 1);
  tasks_push(L);
  lua_pushvalue(L, -2);
  lua_pushinteger(L, rt.depth == 0 ? TASK_RUNNING : TASK_QUEUED);
  lua_rawset(L, -3);
  lua_pop(L, 1);
  return task; /* the thread stays on L's stack */
}

void shmh_rt_spawn(lua_State *L, int n) {
  lua_State *task = spawn_task(L, n);
  lua_pop(L, 1);
  if (rt.exiting) return;
  if (rt.depth == 0) task_resume(task, n);
  else queue_push(task, n);
}

/* ---------------------------------------------------------------- callbacks */

/* luv calls every callback through this (luv_set_callback), and so do the bindings through
 * shmh_rt_call: an error is reported with its traceback and ends the program, and never
 * unwinds through libuv's frames. */
static int rt_pcall(lua_State *L, int nargs, int nresults, int flags) {
  int base = lua_gettop(L) - nargs;
  if (rt.exiting) {
    lua_settop(L, base - 1);
    return 0;
  }
  lua_pushcfunction(L, rt_msgh);
  lua_insert(L, base);
  rt.depth++;
  int status = lua_pcall(L, nargs, nresults, base);
  rt.depth--;
  lua_remove(L, base);
  if (status != LUA_OK) {
    if (lua_touserdata(L, -1) != &exit_sentinel) {
      rt_report(lua_tostring(L, -1) ? lua_tostring(L, -1) : "error in error handling");
      shmh_rt_request_exit(1);
    }
    lua_pop(L, 1);
    return -status;
  }
  return nresults == LUA_MULTRET ? lua_gettop(L) - base + 1 : nresults;
}

int shmh_rt_call(lua_State *L, int n) {
  return rt_pcall(L, n, 0, 0) < 0 ? -1 : 0;
}

/* ---------------------------------------------------------------- the Lua API */

uv_loop_t *shmh_rt_loop(lua_State *L) { return &rt.loop; }
lua_State *shmh_rt_main(lua_State *L) { return rt.L; }
int shmh_rt_exiting(lua_State *L) { return rt.exiting; }

double shmh_rt_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int task_spawn(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  int n = lua_gettop(L) - 1;
  lua_State *task = spawn_task(L, n);
  lua_pushvalue(L, -1); /* return the thread */
  lua_insert(L, -2);
  lua_pop(L, 1);
  if (!rt.exiting) {
    if (rt.depth == 0) task_resume(task, n);
    else queue_push(task, n);
  }
  return 1;
}

static void sleeper_close_cb(uv_handle_t *h) {
  free(shmh_container_of(h, struct sleeper, timer));
}

static void sleeper_unlink(struct sleeper *s) {
  if (s->prev) s->prev->next = s->next;
  else rt.sleepers = s->next;
  if (s->next) s->next->prev = s->prev;
}

static void sleeper_cb(uv_timer_t *t) {
  struct sleeper *s = shmh_container_of(t, struct sleeper, timer);
  lua_State *task = s->task;
  sleeper_unlink(s);
  uv_close((uv_handle_t *)t, sleeper_close_cb);
  lua_pushboolean(task, 1);
  shmh_rt_wake(task, 1);
}

static int task_sleep(lua_State *L) {
  double s = shmh_check_seconds(L, 1, 0);
  shmh_rt_task(L, "shmhost.sleep");
  if (s <= 0) {
    /* sleep(0) yields: the other ready tasks run first. */
    task_set(L, TASK_WAITING);
    lua_pushboolean(L, 1);
    shmh_rt_wake(L, 1);
    return lua_yield(L, 0);
  }
  struct sleeper *sl = calloc(1, sizeof *sl);
  if (sl == NULL) return luaL_error(L, "shmhost.sleep: out of memory");
  uv_timer_init(&rt.loop, &sl->timer);
  sl->task = L;
  sl->next = rt.sleepers;
  if (rt.sleepers) rt.sleepers->prev = sl;
  rt.sleepers = sl;
  double ms = ceil(s * 1000.0);
  /* The loop's clock was read when this iteration began; Lua may have run for a while since.
   * Read it again, or the sleep would end early by that much. */
  uv_update_time(&rt.loop);
  uv_timer_start(&sl->timer, sleeper_cb, ms > 9e15 ? (uint64_t)9e15 : (uint64_t)ms, 0);
  return shmh_rt_yield(L);
}

static int task_now(lua_State *L) {
  lua_pushnumber(L, shmh_rt_now());
  return 1;
}

static int task_pid(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)getpid());
  return 1;
}

static int task_exit(lua_State *L) {
  int code;
  if (lua_isnoneornil(L, 1)) code = 0;
  else if (lua_isboolean(L, 1)) code = lua_toboolean(L, 1) ? 0 : 1;
  else {
    lua_Integer c = luaL_checkinteger(L, 1);
    luaL_argcheck(L, c >= 0 && c <= 255, 1, "exit status must be 0..255");
    code = (int)c;
  }
  shmh_rt_request_exit(code);
  /* Stop the calling code here: a task is never resumed again; elsewhere, unwind. */
  if (shmh_rt_in_task(L) && lua_isyieldable(L)) {
    task_set(L, TASK_WAITING);
    return lua_yield(L, 0);
  }
  lua_pushlightuserdata(L, (void *)&exit_sentinel);
  return lua_error(L);
}

/* shmhost.suspend() and shmhost.resume(task, ...): the bridge from a luv callback to a task.
 *   local me = coroutine.running()
 *   uv.fs_stat(path, function(err, st) shmhost.resume(me, err, st) end)
 *   local err, st = shmhost.suspend() */
static int task_suspend(lua_State *L) {
  shmh_rt_task(L, "shmhost.suspend");
  task_set(L, TASK_SUSPENDED);
  return lua_yield(L, 0);
}

static int task_resume_api(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTHREAD);
  lua_State *task = lua_tothread(L, 1);
  luaL_argcheck(L, task_state(task) == TASK_SUSPENDED, 1,
                "not a task suspended by shmhost.suspend");
  int n = lua_gettop(L) - 1;
  lua_xmove(L, task, n);
  task_set(task, TASK_WAITING);
  shmh_rt_wake(task, n);
  return 0;
}

void shmh_bind_task(lua_State *L) {
  static const luaL_Reg fns[] = {
    {"spawn", task_spawn}, {"sleep", task_sleep}, {"now", task_now}, {"pid", task_pid},
    {"exit", task_exit}, {"suspend", task_suspend}, {"resume", task_resume_api}, {NULL, NULL}};
  luaL_setfuncs(L, fns, 0);
  lua_pushliteral(L, SHMHOST_VERSION);
  lua_setfield(L, -2, "version");
}

/* ---------------------------------------------------------------- set-up and shutdown */

struct signal_query {
  int signum;
  int found;
};

static void find_script_signal(uv_handle_t *h, void *arg) {
  struct signal_query *q = arg;
  /* luv's handles carry data; the runtime's own have none. */
  if (h->type == UV_SIGNAL && h->data != NULL && uv_is_active(h) && !uv_is_closing(h) &&
      ((uv_signal_t *)h)->signum == q->signum)
    q->found = 1;
}

/* SIGINT, SIGTERM and SIGHUP end the program after cleanup, unless the script watches that
 * signal itself with a luv signal handle: then the script decides (it may shut down its own
 * way and call shmhost.exit), as a listener for a signal does in node. */
static void rt_signal_cb(uv_signal_t *h, int signum) {
  struct signal_query q = {signum, 0};
  uv_walk(&rt.loop, find_script_signal, &q);
  if (!q.found) shmh_rt_request_exit(128 + signum);
}

static void run_cleanup_at_exit(void) { shmh_cleanup_run(); }

int shmh_rt_init(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  /* A dead peer must be an error from send(), not a signal that kills us. */
  signal(SIGPIPE, SIG_IGN);
  atexit(run_cleanup_at_exit);
  if (uv_loop_init(&rt.loop) != 0) return -1;
  rt.loop_ready = 1;
  uv_idle_init(&rt.loop, &rt.idle);
  for (int i = 0; i < 3; i++) {
    uv_signal_init(&rt.loop, &rt.signals[i]);
    uv_signal_start(&rt.signals[i], rt_signal_cb, caught_signals[i]);
    /* Signal watchers must not keep the loop alive on their own. */
    uv_unref((uv_handle_t *)&rt.signals[i]);
  }
  lua_State *L = luaL_newstate();
  if (L == NULL) return -1;
  rt.L = L;
  luaL_openlibs(L);
  lua_newtable(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &TASKS_KEY);

  /* luv on our loop, its callbacks through our error handling (the way Neovim embeds it). */
  luv_set_loop(L, &rt.loop);
  luv_set_callback(L, rt_pcall);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  luaopen_luv(L);
  lua_setfield(L, -2, "luv");
  luaopen_shmhost(L);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "shmhost");
  lua_setglobal(L, "shmhost");
  lua_pop(L, 1);
  return 0;
}

lua_State *shmh_rt_state(void) { return rt.L; }

int shmh_rt_run_main(int nargs) {
  lua_State *L = rt.L;
  shmh_rt_spawn(L, nargs);
  while (!rt.exiting) {
    if (uv_run(&rt.loop, UV_RUN_DEFAULT) == 0 && !rt.exiting) break;
  }
  return rt.exiting ? rt.exit_code : 0;
}

static void close_luv_handle(uv_handle_t *h, void *arg) {
  lua_State *L = arg;
  if (h->data == NULL || uv_is_closing(h)) return;
  luv_handle_t *data = h->data;
  lua_rawgeti(L, LUA_REGISTRYINDEX, data->ref);
  if (lua_type(L, -1) != LUA_TUSERDATA || lua_getfield(L, -1, "close") != LUA_TFUNCTION) {
    lua_pop(L, 2);
    return;
  }
  lua_insert(L, -2);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) lua_pop(L, 1);
}

static void close_any(uv_handle_t *h, void *arg) {
  if (!uv_is_closing(h)) {
    if (arg) fprintf(stderr, "shmhost: warning: a %s handle was still open at exit\n",
                     uv_handle_type_name(h->type));
    uv_close(h, NULL);
  }
}

int shmh_rt_finish(int code) {
  if (!rt.exiting) {
    rt.exiting = 1;
    rt.exit_code = code;
  }
  shmh_cleanup_run();
  fflush(stdout);
  if (rt.L == NULL) return rt.exit_code;

  /* luv's close callbacks use the Lua state: close luv's handles while it is alive, and let
   * requests in flight (a luv fs call, say) finish for up to a second. */
  /* A uv_stop still pending (an exit before the loop ever ran) makes the next uv_run return
   * at once after clearing it: spend that run here, so the runs below do their work. Nothing
   * of Lua runs in it, since callbacks and wake-ups are ignored once exiting. */
  uv_run(&rt.loop, UV_RUN_NOWAIT);
  uv_walk(&rt.loop, close_luv_handle, rt.L);
  for (int i = 0; i < 100; i++) {
    uv_run(&rt.loop, UV_RUN_NOWAIT);
    if (rt.loop.active_reqs.count == 0) break;
    usleep(10000);
  }
  if (rt.loop.active_reqs.count != 0) {
    /* A request that does not end would call into a closed state: leave it to the kernel. */
    return rt.exit_code;
  }
  lua_close(rt.L);
  rt.L = NULL;

  while (rt.sleepers) {
    struct sleeper *s = rt.sleepers;
    sleeper_unlink(s);
    uv_close((uv_handle_t *)&s->timer, sleeper_close_cb);
  }
  uv_close((uv_handle_t *)&rt.idle, NULL);
  for (int i = 0; i < 3; i++) uv_close((uv_handle_t *)&rt.signals[i], NULL);
  uv_run(&rt.loop, UV_RUN_NOWAIT);
  /* Whatever is still open here was leaked by a binding: close it so the loop can end. */
  uv_walk(&rt.loop, close_any, getenv("SHMHOST_DEBUG"));
  uv_run(&rt.loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&rt.loop) != 0 && getenv("SHMHOST_DEBUG"))
    fprintf(stderr, "shmhost: warning: the loop did not close clean\n");
  free(rt.queue);
  rt.queue = NULL;
  return rt.exit_code;
}

void shmh_rt_report(const char *text) { rt_report(text); }

int shmh_rt_msgh(lua_State *L) { return rt_msgh(L); }
