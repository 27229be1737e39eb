/* Placeholder until the binding is written; it keeps the build linking. */
#include "bind.h"

void shmh_bind_eventfd(lua_State *L) { (void)L; }
int shmh_eventfd_push_fd(lua_State *L, int fd) { (void)fd; return luaL_error(L, "eventfd: not built yet"); }
int shmh_eventfd_fd(lua_State *L, int idx) { (void)idx; return luaL_error(L, "eventfd: not built yet"); }
