/* Placeholder until the binding is written; it keeps the build linking. */
#include "bind.h"

void shmh_bind_mutex(lua_State *L) { (void)L; }
void shmh_mutex_push(lua_State *L, int segidx, lua_Integer off) { (void)segidx; (void)off; luaL_error(L, "mutex: not built yet"); }
