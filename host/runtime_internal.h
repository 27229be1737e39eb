/* What main.c needs from the runtime beyond the bindings' interface (runtime.h). */
#ifndef SHMHOST_RUNTIME_INTERNAL_H
#define SHMHOST_RUNTIME_INTERNAL_H

#include <lua.h>

/* Creates the Lua state and the loop, opens the libraries, luv and shmhost. 0 or -1. */
int shmh_rt_init(void);
lua_State *shmh_rt_state(void);

/* Runs the function below its nargs arguments on the state's stack as the main task, then
 * the loop until nothing is left to run or shutdown is requested. Returns the exit status. */
int shmh_rt_run_main(int nargs);

/* Shuts down (cleanup, handles, state, loop) and returns the exit status to use. */
int shmh_rt_finish(int code);

/* Begins shutdown with `code` (the first request wins). */
void shmh_rt_request_exit(int code);

/* Prints "shmhost: TEXT" on stderr. */
void shmh_rt_report(const char *text);

/* The message handler that adds a traceback. */
int shmh_rt_msgh(lua_State *L);

#endif
