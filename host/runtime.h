/*
 * The runtime: one lua_State, the uv loop it runs on, the coroutine scheduler, signals and
 * the shutdown path. Bindings use the scheduler through this header; they never call
 * lua_resume themselves.
 *
 * Tasks. A task is a coroutine the scheduler owns (the main chunk is one). A binding that must
 * wait does:
 *
 *     lua_State *task = shmh_rt_task(L, "ev:wait");   -- raises unless L is a task
 *     ... remember `task`, arm a uv handle or a thread ...
 *     return shmh_rt_yield(L);
 *
 * and when the event comes, from a uv callback (or any C code on the loop thread), it pushes
 * the values the waiting call should return onto `task` and calls shmh_rt_wake(task, n). The
 * values become the results of the yielded C function. A wake while Lua code is running is
 * queued and runs from the loop, so tasks never resume inside one another.
 *
 * uv handles owned by bindings keep handle->data == NULL and find their owner with
 * container_of: the shutdown path tells luv's handles (data != NULL) from ours that way. The
 * close callback of a binding's handle must not touch the Lua state (at shutdown it runs after
 * lua_close).
 */
#ifndef SHMHOST_RUNTIME_H
#define SHMHOST_RUNTIME_H

#include <stddef.h>
#include <lua.h>
#include <uv.h>

#define shmh_container_of(ptr, type, member) \
  ((type *)((char *)(ptr) - offsetof(type, member)))

/* The loop every handle of the process lives on. */
uv_loop_t *shmh_rt_loop(lua_State *L);

/* The main thread of the state (where callbacks that are not tasks run). */
lua_State *shmh_rt_main(lua_State *L);

/* Returns L when it is a task that may wait; otherwise raises "WHAT: cannot wait outside a
 * task (use shmhost.spawn)". */
lua_State *shmh_rt_task(lua_State *L, const char *what);

/* True when L is a task (without raising). */
int shmh_rt_in_task(lua_State *L);

/* Suspends the running task; use as `return shmh_rt_yield(L);`. */
int shmh_rt_yield(lua_State *L);

/* Resumes a task suspended by shmh_rt_yield with the top n values of its stack as results.
 * Safe from any code on the loop thread; ignored (values popped) once shutdown has begun. */
void shmh_rt_wake(lua_State *task, int n);

/* Starts the function at the top of L's stack, below its n arguments, as a new task; the
 * function and arguments are popped. Used for shmhost.spawn and for callbacks that may wait
 * (ev:on, srv:on_accept, sock:on_recv). */
void shmh_rt_spawn(lua_State *L, int n);

/* Calls the function below its n arguments in protected mode on the main thread, the way a
 * luv callback is called: an error ends the program with status 1 and a traceback. Returns 0
 * on success, -1 when the call failed. */
int shmh_rt_call(lua_State *L, int n);

/* True once shutdown has begun (a signal, shmhost.exit, or an uncaught error). */
int shmh_rt_exiting(lua_State *L);

/* Seconds from a monotonic clock, with nanosecond resolution. */
double shmh_rt_now(void);

#endif
