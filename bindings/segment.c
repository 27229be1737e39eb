/* Placeholder until the binding is written; it keeps the build linking. */
#include "bind.h"

void shmh_bind_segment(lua_State *L) { (void)L; }
shmh_seg *shmh_segment_check(lua_State *L, int idx) { luaL_error(L, "segments: not built yet"); (void)idx; return NULL; }
void *shmh_segment_ptr(lua_State *L, int idx, lua_Integer off, size_t len, int write, int arg) { (void)idx; (void)off; (void)len; (void)write; (void)arg; luaL_error(L, "segments: not built yet"); return NULL; }
void shmh_segment_touched(lua_State *L, shmh_seg *seg) { (void)L; (void)seg; }
int shmh_segment_push_fd(lua_State *L, int fd) { (void)fd; return luaL_error(L, "segments: not built yet"); }
int shmh_segment_fd(lua_State *L, int idx) { (void)idx; return luaL_error(L, "segments: not built yet"); }
