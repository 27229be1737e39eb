/*
 * shmhost.fd: a descriptor received from a peer that is none of the typed objects (a pipe, a
 * regular file, a device). It can be sent on, inspected, closed, or taken: `take()` hands the
 * number to the script (for luv or io) and the object forgets it.
 *
 * Also the typing of received descriptors, told from the descriptor itself: the kernel sends
 * only the open file, never what the sender thought it was.
 */
#include "unix_sock.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
  int fd; /* -1 once closed or taken */
} rawfd;

static rawfd *rawfd_ud(lua_State *L, int idx) { return luaL_checkudata(L, idx, SHMH_FD); }

static rawfd *rawfd_check(lua_State *L, int idx) {
  rawfd *r = rawfd_ud(L, idx);
  if (r->fd < 0) luaL_argerror(L, idx, "descriptor is closed");
  return r;
}

/* Pushes a raw object owning fd. The userdata is made first; if that raises, fd is closed by
 * the caller's cleanup. */
static void rawfd_push(lua_State *L, int fd) {
  rawfd *r = lua_newuserdatauv(L, sizeof *r, 0);
  r->fd = fd;
  luaL_setmetatable(L, SHMH_FD);
}

static int rawfd_fdm(lua_State *L) {
  lua_pushinteger(L, rawfd_check(L, 1)->fd);
  return 1;
}

static int rawfd_take(lua_State *L) {
  rawfd *r = rawfd_check(L, 1);
  lua_pushinteger(L, r->fd);
  r->fd = -1;
  return 1;
}

static const char *rawfd_typename(mode_t m) {
  if (S_ISREG(m)) return "file";
  if (S_ISDIR(m)) return "directory";
  if (S_ISFIFO(m)) return "fifo";
  if (S_ISSOCK(m)) return "socket";
  if (S_ISCHR(m)) return "char";
  if (S_ISBLK(m)) return "block";
  if (S_ISLNK(m)) return "link";
  return "other";
}

static int rawfd_stat(lua_State *L) {
  rawfd *r = rawfd_check(L, 1);
  struct stat st;
  if (fstat(r->fd, &st) < 0) return shmh_fail(L, errno, "fstat", "descriptor");
  lua_createtable(L, 0, 7);
  lua_pushstring(L, rawfd_typename(st.st_mode));
  lua_setfield(L, -2, "type");
  lua_pushinteger(L, (lua_Integer)(st.st_mode & 07777));
  lua_setfield(L, -2, "mode");
  lua_pushinteger(L, (lua_Integer)st.st_size);
  lua_setfield(L, -2, "size");
  lua_pushinteger(L, (lua_Integer)st.st_uid);
  lua_setfield(L, -2, "uid");
  lua_pushinteger(L, (lua_Integer)st.st_gid);
  lua_setfield(L, -2, "gid");
  lua_pushinteger(L, (lua_Integer)st.st_ino);
  lua_setfield(L, -2, "ino");
  lua_pushinteger(L, (lua_Integer)st.st_dev);
  lua_setfield(L, -2, "dev");
  return 1;
}

static int rawfd_close(lua_State *L) {
  rawfd *r = rawfd_ud(L, 1);
  if (r->fd >= 0) close(r->fd);
  r->fd = -1;
  lua_pushboolean(L, 1);
  return 1;
}

static int rawfd_gc(lua_State *L) {
  rawfd *r = rawfd_ud(L, 1);
  if (r->fd >= 0) close(r->fd);
  r->fd = -1;
  return 0;
}

static int rawfd_tostring(lua_State *L) {
  rawfd *r = rawfd_ud(L, 1);
  if (r->fd < 0) lua_pushliteral(L, SHMH_FD " (closed)");
  else lua_pushfstring(L, SHMH_FD " (fd %d)", r->fd);
  return 1;
}

int shmh_rawfd_fd(lua_State *L, int idx) { return rawfd_check(L, idx)->fd; }

struct adopt {
  int (*push)(lua_State *L, int fd);
  int fd;
};

static int rawfd_adopt_run(lua_State *L) {
  struct adopt *a = lua_touserdata(L, 1);
  return a->push(L, a->fd);
}

void shmh_rawfd_adopt(lua_State *L, int fd) {
  int kind = shmh_fd_kind(fd);
  struct adopt a = {NULL, fd};
  if (kind == SHMH_FD_EVENTFD) a.push = shmh_eventfd_push_fd;
  else if (kind == SHMH_FD_MEMFD || kind == SHMH_FD_SHM) a.push = shmh_segment_push_fd;
  else if (kind == SHMH_FD_SOCKET) a.push = shmh_socket_push_fd;
  if (a.push == NULL) {
    rawfd_push(L, fd);
    return;
  }
  /* A typed object can fail to be made (a segment that cannot be mapped, say), and the typed
   * constructors close the descriptor then. Keep a duplicate, so that what the peer sent
   * still arrives, as a raw object. A constructor that raises made its userdata before it
   * took the descriptor, so the original is still ours then. */
  int dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  int base = lua_gettop(L);
  lua_pushcfunction(L, rawfd_adopt_run);
  lua_pushlightuserdata(L, &a);
  if (lua_pcall(L, 1, LUA_MULTRET, 0) != LUA_OK) {
    lua_pop(L, 1);
    if (dup >= 0) close(dup);
    rawfd_push(L, fd);
    return;
  }
  int n = lua_gettop(L) - base;
  if (n == 1 && !lua_isnil(L, -1)) {
    if (dup >= 0) close(dup);
    return;
  }
  lua_settop(L, base);
  if (dup >= 0) rawfd_push(L, dup);
  else lua_pushboolean(L, 0);
}

void shmh_rawfd_register(lua_State *L) {
  static const luaL_Reg methods[] = {
    {"fd", rawfd_fdm}, {"take", rawfd_take}, {"stat", rawfd_stat}, {"close", rawfd_close},
    {NULL, NULL}};
  static const luaL_Reg meta[] = {
    {"__gc", rawfd_gc}, {"__close", rawfd_gc}, {"__tostring", rawfd_tostring}, {NULL, NULL}};
  shmh_newtype(L, SHMH_FD, methods, meta);
}
