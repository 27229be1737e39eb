/* Placeholder until the binding is written; it keeps the build linking. */
#include "bind.h"

void shmh_bind_unix(lua_State *L) { (void)L; }
int shmh_socket_push_fd(lua_State *L, int fd) { (void)fd; return luaL_error(L, "unix: not built yet"); }
int shmh_socket_fd(lua_State *L, int idx) { (void)idx; return luaL_error(L, "unix: not built yet"); }
int shmh_rawfd_fd(lua_State *L, int idx) { (void)idx; return luaL_error(L, "unix: not built yet"); }
