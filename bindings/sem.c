/* Placeholder until the binding is written; it keeps the build linking. */
#include "bind.h"

void shmh_bind_sem(lua_State *L) { (void)L; }
void shmh_sem_push(lua_State *L, int segidx, lua_Integer off) { (void)segidx; (void)off; luaL_error(L, "sem: not built yet"); }
