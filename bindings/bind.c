/*
 * The module table and what every binding file shares: the `nil, message, errno` convention,
 * metatables, option tables, time arguments, and the errno names.
 */
#include "bind.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int shmh_fail(lua_State *L, int err, const char *call, const char *obj) {
  lua_pushnil(L);
  if (obj && obj[0]) lua_pushfstring(L, "%s %s: %s", call, obj, strerror(err));
  else lua_pushfstring(L, "%s: %s", call, strerror(err));
  lua_pushinteger(L, err);
  return 3;
}

void shmh_check_aligned(lua_State *L, int arg, lua_Integer off, lua_Integer align,
                        const char *what) {
  if (off % align != 0)
    luaL_argerror(L, arg, lua_pushfstring(L, "offset %I is not a multiple of %I (the alignment of %s)",
                                          off, align, what));
}

int shmh_timeout(lua_State *L) {
  lua_pushnil(L);
  lua_pushliteral(L, "timeout");
  lua_pushinteger(L, ETIMEDOUT);
  return 3;
}

void shmh_newtype(lua_State *L, const char *name, const luaL_Reg *methods,
                  const luaL_Reg *metamethods) {
  luaL_newmetatable(L, name); /* sets __name, so errors say "shmhost.x expected" */
  if (metamethods) luaL_setfuncs(L, metamethods, 0);
  if (methods) {
    lua_getfield(L, -1, "__index");
    int has_index = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (!has_index) {
      lua_newtable(L);
      luaL_setfuncs(L, methods, 0);
      lua_setfield(L, -2, "__index");
    }
  }
  lua_pop(L, 1);
}

/* ------------------------------------------------------------ option tables */

void shmh_check_options(lua_State *L, int t, const char *const known[]) {
  if (lua_isnoneornil(L, t)) return;
  luaL_checktype(L, t, LUA_TTABLE);
  t = lua_absindex(L, t);
  lua_pushnil(L);
  while (lua_next(L, t)) {
    lua_pop(L, 1);
    int ok = 0;
    if (lua_type(L, -1) == LUA_TSTRING) {
      const char *k = lua_tostring(L, -1);
      for (int i = 0; known[i] && !ok; i++) ok = strcmp(known[i], k) == 0;
    }
    if (!ok) {
      const char *k = luaL_tolstring(L, -1, NULL);
      luaL_argerror(L, t, lua_pushfstring(L, "unknown option '%s'", k));
    }
  }
}

/* Pushes opts[key] and returns its type; LUA_TNIL when there is no table. */
static int opt_get(lua_State *L, int t, const char *key) {
  if (lua_isnoneornil(L, t)) {
    lua_pushnil(L);
    return LUA_TNIL;
  }
  luaL_checktype(L, t, LUA_TTABLE);
  return lua_getfield(L, t, key);
}

static int opt_error(lua_State *L, int t, const char *key, const char *expected) {
  return luaL_argerror(L, t, lua_pushfstring(L, "option '%s' must be %s, got %s", key, expected,
                                             luaL_typename(L, -1)));
}

int shmh_opt_bool(lua_State *L, int t, const char *key, int def) {
  int tp = opt_get(L, t, key);
  int v = def;
  if (tp == LUA_TBOOLEAN) v = lua_toboolean(L, -1);
  else if (tp != LUA_TNIL) opt_error(L, t, key, "a boolean");
  lua_pop(L, 1);
  return v;
}

lua_Integer shmh_opt_integer(lua_State *L, int t, const char *key, lua_Integer def) {
  opt_get(L, t, key);
  lua_Integer v = def;
  if (!lua_isnil(L, -1)) {
    int isnum;
    v = lua_tointegerx(L, -1, &isnum);
    if (!isnum || lua_type(L, -1) != LUA_TNUMBER) opt_error(L, t, key, "an integer");
  }
  lua_pop(L, 1);
  return v;
}

double shmh_opt_number(lua_State *L, int t, const char *key, double def) {
  int tp = opt_get(L, t, key);
  double v = def;
  if (tp == LUA_TNUMBER) v = lua_tonumber(L, -1);
  else if (tp != LUA_TNIL) opt_error(L, t, key, "a number");
  lua_pop(L, 1);
  return v;
}

const char *shmh_opt_string(lua_State *L, int t, const char *key, const char *def) {
  int tp = opt_get(L, t, key);
  const char *v = def;
  if (tp == LUA_TSTRING) v = lua_tostring(L, -1); /* anchored in the option table */
  else if (tp != LUA_TNIL) opt_error(L, t, key, "a string");
  lua_pop(L, 1);
  return v;
}

mode_t shmh_opt_mode(lua_State *L, int t, const char *key, mode_t def) {
  int tp = opt_get(L, t, key);
  long v = (long)def;
  if (tp == LUA_TSTRING) {
    const char *s = lua_tostring(L, -1);
    char *end;
    errno = 0;
    v = strtol(s, &end, 8);
    if (s[0] == '\0' || *end != '\0' || errno != 0 || v < 0 || v > 07777)
      luaL_argerror(L, t, lua_pushfstring(L, "option '%s' must be an octal mode like \"0600\", got \"%s\"", key, s));
  } else if (tp == LUA_TNUMBER) {
    int isnum;
    lua_Integer n = lua_tointegerx(L, -1, &isnum);
    if (!isnum || n < 0 || n > 07777)
      luaL_argerror(L, t, lua_pushfstring(L, "option '%s' must be a mode from 0 to 07777", key));
    v = (long)n;
  } else if (tp != LUA_TNIL) {
    opt_error(L, t, key, "an octal string or an integer");
  }
  lua_pop(L, 1);
  return (mode_t)v;
}

double shmh_check_seconds(lua_State *L, int i, double def) {
  if (lua_isnoneornil(L, i)) return def;
  double s = luaL_checknumber(L, i);
  luaL_argcheck(L, !isnan(s) && s >= 0, i, "time in seconds must be a non-negative number");
  return s;
}

/* ------------------------------------------------------------ objects with descriptors */

int shmh_object_fd(lua_State *L, int idx) {
  if (luaL_testudata(L, idx, SHMH_SEGMENT)) return shmh_segment_fd(L, idx);
  if (luaL_testudata(L, idx, SHMH_EVENTFD)) return shmh_eventfd_fd(L, idx);
  if (luaL_testudata(L, idx, SHMH_SOCKET)) return shmh_socket_fd(L, idx);
  if (luaL_testudata(L, idx, SHMH_FD)) return shmh_rawfd_fd(L, idx);
  return -1;
}

/* ------------------------------------------------------------ errno names */

void shmh_bind_errno(lua_State *L) {
  static const struct { const char *name; int value; } names[] = {
#define E(x) {#x, x}
    E(EPERM), E(ENOENT), E(ESRCH), E(EINTR), E(EIO), E(ENXIO), E(E2BIG), E(EBADF),
    E(ECHILD), E(EAGAIN), E(EWOULDBLOCK), E(ENOMEM), E(EACCES), E(EFAULT), E(EBUSY),
    E(EEXIST), E(EXDEV), E(ENODEV), E(ENOTDIR), E(EISDIR), E(EINVAL), E(ENFILE), E(EMFILE),
    E(ENOTTY), E(EFBIG), E(ENOSPC), E(ESPIPE), E(EROFS), E(EMLINK), E(EPIPE), E(EDOM),
    E(ERANGE), E(EDEADLK), E(ENAMETOOLONG), E(ENOLCK), E(ENOSYS), E(ENOTEMPTY), E(ELOOP),
    E(ENOMSG), E(EIDRM), E(ENODATA), E(ETIME), E(EOVERFLOW), E(EBADMSG), E(ENOTSOCK),
    E(EDESTADDRREQ), E(EMSGSIZE), E(EPROTOTYPE), E(ENOPROTOOPT), E(EPROTONOSUPPORT),
    E(EOPNOTSUPP), E(EADDRINUSE), E(EADDRNOTAVAIL), E(ENETDOWN), E(ECONNABORTED),
    E(ECONNRESET), E(ENOBUFS), E(EISCONN), E(ENOTCONN), E(ETIMEDOUT), E(ECONNREFUSED),
    E(EALREADY), E(EINPROGRESS), E(ECANCELED), E(EOWNERDEAD), E(ENOTRECOVERABLE),
#undef E
  };
  lua_createtable(L, 0, (int)(sizeof names / sizeof names[0]));
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    lua_pushinteger(L, names[i].value);
    lua_setfield(L, -2, names[i].name);
  }
  lua_setfield(L, -2, "errno");
}

int luaopen_shmhost(lua_State *L) {
  lua_newtable(L);
  shmh_bind_task(L);
  shmh_bind_errno(L);
  shmh_bind_segment(L);
  shmh_bind_layout(L);
  shmh_bind_mutex(L);
  shmh_bind_sem(L);
  shmh_bind_eventfd(L);
  shmh_bind_unix(L);
  shmh_bind_ring(L);
  return 1;
}
