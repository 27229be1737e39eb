/*
 * seg:futex_wait and seg:futex_wake: a futex on an aligned 32-bit word of a segment, shared
 * between processes (no FUTEX_PRIVATE_FLAG: the waiter and the waker map the same page from
 * different processes). segment.c lists the two methods and calls shmh_futex_shut when the
 * segment closes.
 *
 *   seg:futex_wait(off, expected [, timeout])
 *       -> true | nil, "changed", EAGAIN | nil, "timeout", ETIMEDOUT | nil, "closed"
 *   seg:futex_wake(off [, n = 1]) -> the number of waiters woken
 *
 * A wait in a task never blocks the loop. It looks at the word (not `expected`: "changed" at
 * once, as FUTEX_WAIT's EAGAIN), spins up to SHMH_WAIT_SPIN on it, then hands the sleep to a
 * thread of its own that sleeps in FUTEX_WAIT slices and reports through a uv_async_t. Every
 * end after the first look (a wake, or the word seen changed by the spin or by a later slice)
 * is `true`: the caller looks at the word again either way.
 *
 * The thread sleeps on a mapping of its own of the same object (the descriptor duplicated, or
 * the System V segment attached again): the script may close the segment while the thread is
 * inside FUTEX_WAIT, and the word must stay where the kernel looks for it. Closing the segment
 * resumes the task with nil, "closed" at once and does not wait for the thread: it sees `stop`
 * when its slice ends (the word is the script's, so nothing may write it to wake the thread
 * early), then unmaps its mapping and frees what it shares with the loop. Several tasks may
 * wait on one segment, each with a thread; a thread idle for IDLE seconds ends.
 */
#include "bind.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "seg.h"
#include "sync.h"

#define SLICE 0.05 /* seconds a thread sleeps before it looks at `stop` again */
#define IDLE 2     /* seconds an idle thread stays for the next wait before it ends */

/* One waiting thread and the handle it wakes the loop with. Heap memory shared by the thread
 * and the loop: each holds a reference (`refs`), and the last to let go frees it, because a
 * closed segment's thread may still be in its last slice when libuv has closed the handle. */
struct shmh_futex_waiter {
  uv_async_t async;       /* data stays NULL: the runtime tells our handles from luv's so */
  pthread_mutex_t lk;     /* guards everything down to `result` */
  pthread_cond_t cv;
  int refs;               /* the handle until its close callback, and a running thread */
  int running;            /* a thread is alive (it clears this as it ends) */
  shmh_seg own;           /* the thread's mapping; the loop changes it only between requests */
  int request, stop;      /* loop -> thread */
  uint32_t *word;
  uint32_t expected;
  double deadline;        /* monotonic seconds, < 0 for none */
  int done, result;       /* thread -> loop: 0, -EAGAIN, -ETIMEDOUT or -errno */
  lua_State *task;        /* loop only: the waiting task, NULL when none */
  struct shmh_futex_waiter *next;
};
typedef struct shmh_futex_waiter fwaiter;

static double mono_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Drops one reference under the lock; the caller frees when this returns 1. */
static int fw_unref_locked(fwaiter *w) { return --w->refs == 0; }

static void fw_free(fwaiter *w) {
  pthread_cond_destroy(&w->cv);
  pthread_mutex_destroy(&w->lk);
  free(w);
}

/* ------------------------------------------------------------ the thread */

static void *fw_main(void *arg) {
  fwaiter *w = arg;
  pthread_mutex_lock(&w->lk);
  for (;;) {
    struct timespec idle;
    clock_gettime(CLOCK_MONOTONIC, &idle);
    idle.tv_sec += IDLE;
    int rc = 0;
    while (!w->stop && !w->request && rc != ETIMEDOUT)
      rc = pthread_cond_timedwait(&w->cv, &w->lk, &idle);
    if (w->stop || !w->request) break; /* closed, or idle: the thread ends */
    uint32_t *word = w->word;
    uint32_t expected = w->expected;
    double deadline = w->deadline;
    pthread_mutex_unlock(&w->lk);
    int r, stop = 0;
    for (;;) {
      double slice = SLICE;
      if (deadline >= 0) {
        double left = deadline - mono_now();
        if (left <= 0) {
          r = -ETIMEDOUT;
          break;
        }
        if (left < slice) slice = left;
      }
      /* Only the kernel touches the word: a page a peer truncated is EFAULT here, not SIGBUS. */
      r = shmh_futex_wait(word, expected, slice);
      if (r != -ETIMEDOUT && r != -EINTR) break;
      pthread_mutex_lock(&w->lk);
      stop = w->stop;
      pthread_mutex_unlock(&w->lk);
      if (stop) break;
    }
    pthread_mutex_lock(&w->lk);
    w->request = 0;
    w->result = r;
    w->done = 1;
    /* After stop the loop has closed the handle: sending on it is not allowed. */
    if (!w->stop) uv_async_send(&w->async);
  }
  shmh_seg_close(&w->own);
  w->running = 0;
  int last = fw_unref_locked(w);
  pthread_mutex_unlock(&w->lk);
  if (last) fw_free(w);
  return NULL;
}

/* ------------------------------------------------------------ the loop's side */

/* Marks a wait that ended with a failure other than a timeout; futex_wait_k looks at it. */
static const char FAULT = 'f';

static void fw_async_cb(uv_async_t *a) {
  fwaiter *w = shmh_container_of(a, fwaiter, async);
  pthread_mutex_lock(&w->lk);
  int done = w->done, rc = w->result;
  w->done = 0;
  pthread_mutex_unlock(&w->lk);
  if (!done || w->task == NULL) return;
  lua_State *t = w->task;
  w->task = NULL;
  uv_unref((uv_handle_t *)a);
  if (rc == 0 || rc == -EAGAIN) {
    /* EAGAIN from a later slice: the word changed after the call looked, which is what the
     * caller waits for (the first look, which answers "changed", was made on the loop). */
    lua_pushboolean(t, 1);
    shmh_rt_wake(t, 1);
  } else if (rc == -ETIMEDOUT) {
    lua_pushnil(t);
    lua_pushliteral(t, "timeout");
    lua_pushinteger(t, ETIMEDOUT);
    shmh_rt_wake(t, 3);
  } else {
    lua_pushlightuserdata(t, (void *)&FAULT);
    lua_pushinteger(t, -rc);
    shmh_rt_wake(t, 2);
  }
}

static void fw_close_cb(uv_handle_t *h) {
  /* Runs after lua_close at shutdown: only memory of our own is touched. */
  fwaiter *w = shmh_container_of((uv_async_t *)h, fwaiter, async);
  pthread_mutex_lock(&w->lk);
  int last = fw_unref_locked(w);
  pthread_mutex_unlock(&w->lk);
  if (last) fw_free(w);
}

static fwaiter *fw_new(lua_State *L) {
  fwaiter *w = calloc(1, sizeof *w);
  if (w == NULL) return NULL;
  if (uv_async_init(shmh_rt_loop(L), &w->async, fw_async_cb) != 0) {
    free(w);
    return NULL;
  }
  w->async.data = NULL;
  /* An idle waiter must not keep the process alive: referenced only while a task waits. */
  uv_unref((uv_handle_t *)&w->async);
  shmh_seg_init(&w->own);
  pthread_mutex_init(&w->lk, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&w->cv, &ca);
  pthread_condattr_destroy(&ca);
  w->refs = 1;
  return w;
}

void shmh_futex_shut(struct shmh_futex_waiter **list, int wake) {
  fwaiter *w = *list;
  *list = NULL;
  while (w != NULL) {
    fwaiter *next = w->next;
    pthread_mutex_lock(&w->lk);
    w->stop = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->lk);
    lua_State *t = w->task;
    w->task = NULL;
    uv_close((uv_handle_t *)&w->async, fw_close_cb);
    if (t != NULL && wake) {
      lua_pushnil(t);
      lua_pushliteral(t, "closed");
      shmh_rt_wake(t, 2);
    }
    w = next;
  }
}

/* ------------------------------------------------------------ the methods */

static const char *seg_label(lua_State *L, const shmh_seg *s) {
  if (s->kind == SHMH_SEG_SYSV) return lua_pushfstring(L, "id %d", s->shmid);
  if (s->kind == SHMH_SEG_MEMFD) return lua_pushfstring(L, "memfd:%s", s->name);
  return lua_pushstring(L, s->name[0] ? s->name : "(unnamed)");
}

/* The word at `off` of the segment at index 1, checked: open, inside, not truncated, and
 * aligned to 4 (the kernel refuses a futex word that is not). */
static uint32_t *word_at(lua_State *L, lua_Integer off) {
  uint32_t *p = shmh_segment_ptr(L, 1, off, sizeof(uint32_t), 0, 2);
  shmh_check_aligned(L, 2, off, 4, "a futex word");
  return p;
}

/* Reads the word the way a C peer's atomic load would; raises when a peer truncated it. */
static uint32_t word_load(lua_State *L, shmh_seg *seg, uint32_t *p) {
  uint32_t v = __atomic_load_n(p, __ATOMIC_SEQ_CST);
  shmh_segment_touched(L, seg);
  return v;
}

/* A failed futex call. EFAULT at a word inside the segment means a peer truncated the object
 * (the kernel reports that instead of SIGBUS): touching the word lets the SIGBUS guard see it
 * and raise as every other access does. */
static int futex_failed(lua_State *L, lua_Integer off, int err, const char *call) {
  if (err == EFAULT) {
    uint32_t *p = word_at(L, off);
    word_load(L, shmh_segment_check(L, 1), p);
  }
  return shmh_fail(L, err, call, seg_label(L, shmh_segment_check(L, 1)));
}

/* Hands the wait to w's thread (starting one when it has none). 0 or -errno. */
static int fw_request(fwaiter *w, const shmh_seg *seg, lua_Integer off, uint32_t expected,
                      double deadline) {
  int rc = 0;
  pthread_mutex_lock(&w->lk);
  /* Between requests the thread does not touch its mapping: it may be made again here, for a
   * segment that grew since, say. */
  if (w->own.kind == SHMH_SEG_NONE || !shmh_seg_in_bounds(&w->own, (uint64_t)off, 4)) {
    shmh_seg_close(&w->own);
    shmh_seg_init(&w->own);
    rc = shmh_seg_map_again(&w->own, seg, 1); /* read-only: FUTEX_WAIT only reads */
    if (rc == 0 && !shmh_seg_in_bounds(&w->own, (uint64_t)off, 4)) rc = -ERANGE;
  }
  if (rc == 0) {
    w->word = (uint32_t *)((char *)w->own.addr + off);
    w->expected = expected;
    w->deadline = deadline;
    w->done = 0;
    w->request = 1;
    if (w->running) {
      pthread_cond_signal(&w->cv);
    } else {
      pthread_attr_t attr;
      pthread_attr_init(&attr);
      /* Nobody joins it: a closed segment's thread ends by itself after its last slice. */
      pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
      /* The thread starts with every signal blocked (it inherits the mask), so SIGINT, SIGTERM
       * and SIGCHLD go to the loop thread and never cut a slice short. It touches no memory
       * that could fault: the kernel reads the word. */
      sigset_t all, old;
      sigfillset(&all);
      pthread_sigmask(SIG_SETMASK, &all, &old);
      pthread_t th;
      int err = pthread_create(&th, &attr, fw_main, w);
      pthread_sigmask(SIG_SETMASK, &old, NULL);
      pthread_attr_destroy(&attr);
      if (err != 0) {
        w->request = 0;
        rc = -err;
      } else {
        w->running = 1;
        w->refs++;
      }
    }
  }
  if (rc < 0 && !w->running) shmh_seg_close(&w->own);
  pthread_mutex_unlock(&w->lk);
  return rc;
}

/* Runs the yield in a function of its own, so that futex_wait_k sees the results. */
static int futex_park(lua_State *L) { return shmh_rt_yield(L); }

/* Stack: 1 seg, 2 off, 3 expected, 4 timeout, then what the wait resumed with. */
static int futex_wait_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  if (lua_touserdata(L, 5) == (void *)&FAULT)
    return futex_failed(L, lua_tointeger(L, 2), (int)lua_tointeger(L, 6), "futex_wait");
  return lua_gettop(L) - 4;
}

static uint32_t check_value(lua_State *L, int arg) {
  lua_Integer v = luaL_checkinteger(L, arg);
  /* A word is read back as u32 or i32: both spellings of a value are accepted. */
  luaL_argcheck(L, v >= INT32_MIN && v <= (lua_Integer)UINT32_MAX, arg,
                "a futex word holds a 32-bit value (-2^31 .. 2^32-1)");
  return (uint32_t)v;
}

int shmh_segment_futex_wait(lua_State *L) {
  lua_Integer off = luaL_checkinteger(L, 2);
  uint32_t expected = check_value(L, 3);
  int timed = !lua_isnoneornil(L, 4);
  double timeout = shmh_check_seconds(L, 4, -1);
  lua_settop(L, 4);
  /* A wait that may block needs a task whether or not this one would have to, so a misuse
   * shows at once rather than on the day the wake comes late; a timeout of 0 is a check. */
  int check_only = timed && timeout <= 0;
  if (!check_only) shmh_rt_task(L, "seg:futex_wait");
  uint32_t *p = word_at(L, off);
  shmh_seg *seg = shmh_segment_check(L, 1);
  if (word_load(L, seg, p) != expected) {
    lua_pushnil(L);
    lua_pushliteral(L, "changed");
    lua_pushinteger(L, EAGAIN);
    return 3;
  }
  if (check_only) return shmh_timeout(L);
  double start = mono_now();
  /* Spin briefly before handing off to a thread (SHMH_WAIT_SPIN says why). No Lua runs in
   * the spin, so the pointer stays valid. */
  double spin = timed && timeout < SHMH_WAIT_SPIN ? timeout : SHMH_WAIT_SPIN;
  int changed = 0;
  do {
    for (int i = 0; i < 64; i++) shmh_cpu_relax();
    changed = __atomic_load_n(p, __ATOMIC_SEQ_CST) != expected;
  } while (!changed && mono_now() - start < spin);
  shmh_segment_touched(L, seg);
  if (changed) {
    lua_pushboolean(L, 1);
    return 1;
  }
  if (timed && mono_now() - start >= timeout) return shmh_timeout(L);

  struct shmh_futex_waiter **list = shmh_segment_futexes(L, 1);
  fwaiter *w = *list;
  while (w != NULL && w->task != NULL) w = w->next;
  if (w == NULL) {
    if ((w = fw_new(L)) == NULL) return shmh_fail(L, ENOMEM, "seg:futex_wait", seg_label(L, seg));
    w->next = *list;
    *list = w;
  }
  int rc = fw_request(w, seg, off, expected, timed ? start + timeout : -1);
  if (rc < 0)
    return shmh_fail(L, -rc, "seg:futex_wait", seg_label(L, seg));
  w->task = L;
  uv_ref((uv_handle_t *)&w->async);
  lua_pushcfunction(L, futex_park);
  lua_callk(L, 0, LUA_MULTRET, 0, futex_wait_k);
  return futex_wait_k(L, LUA_OK, 0);
}

int shmh_segment_futex_wake(lua_State *L) {
  lua_Integer off = luaL_checkinteger(L, 2);
  lua_Integer n = luaL_optinteger(L, 3, 1);
  luaL_argcheck(L, n >= 1, 3, "the number of waiters to wake must be at least 1");
  uint32_t *p = word_at(L, off);
  /* FUTEX_WAKE only looks the word's page up: a read-only mapping may wake. */
  int rc = shmh_futex_wake(p, n > INT_MAX ? INT_MAX : (int)n);
  if (rc < 0) return futex_failed(L, off, -rc, "futex_wake");
  lua_pushinteger(L, rc);
  return 1;
}
