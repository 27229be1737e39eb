/* Placeholder until the binding is written; it keeps the build linking. */
#include "bind.h"

void shmh_bind_ring(lua_State *L) { (void)L; }
