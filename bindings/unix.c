/*
 * shm.unix.listen{...} and shm.unix.connect{...}: the constructors of shmhost.socket, and the
 * retrying connect (`wait = S`) that lets a peer start before its listener.
 *
 * The behaviour scripts rely on, beyond docs/DESIGN.md section 5:
 *   - listen: exactly one of path= and abstract= (any bytes, NULs too; its length is the
 *     name's). mode= applies to a path (set before listen(), so never wider for a moment);
 *     an abstract name has no permissions, so allow_uids is its only guard. Connections from
 *     uids other than ours and allow_uids are closed at accept time with a `warning:` line.
 *     A path with a stale socket is replaced (warning); a live listener is EADDRINUSE; a
 *     file that is not a socket is EEXIST "(not a socket; left untouched)". keep=true or
 *     srv:keep() leaves the path at close and exit.
 *   - connect{wait=S}: retries every 20 ms while the path is missing, refused or the backlog
 *     is full; needs a task when S > 0; after S, nil, msg, errno of the last attempt.
 *   - send(bytes, objs): objs holds shmhost objects with a descriptor or plain descriptor
 *     numbers, at most 253. Ancillary data needs a byte of data: send("", objs) sends one NUL
 *     byte. In a task a send completes (it waits for room; on a stream the descriptors go with
 *     the first part); outside a task it returns the bytes that went, like write(2), or
 *     nil, msg, EAGAIN. A gone peer is nil, "closed", EPIPE (or ECONNRESET).
 *   - recv(max): a seqpacket message longer than max is cut to max, as recv(2) does. The end
 *     of the connection is nil, "closed". Descriptors cut by MSG_CTRUNC make the call return
 *     nil, msg, EMSGSIZE; the message is dropped and every descriptor that came is closed.
 *   - Received descriptors are typed from themselves; an eventfd or socket adopted this way is
 *     set O_NONBLOCK, which the sender's copy shares (one open file description).
 *   - on_recv(fn): fn(bytes, objs) per message, then fn(nil, "closed") (or nil, msg, errno)
 *     once at the end, after which the callback is dropped. on_accept(fn): fn(conn) per
 *     connection; a failing accept (EMFILE...) calls fn(nil, msg, errno) once and drops it.
 *     An object with a callback stays alive while the callback is set.
 *   - One task at a time may wait in accept/recv and one in send on a socket; a second
 *     one, or a wait while a callback is set, raises.
 */
#include "unix_sock.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CONNWAIT "shmhost.connwait"
/* How often a waiting connect tries again. */
#define CONNWAIT_MS 20

struct target {
  struct shmh_unix_addr addr;
  int type;
  char name[112];
};

/* Reads path= or abstract= and type= from the option table at index 1. */
static void unix_target(lua_State *L, struct target *t) {
  size_t alen = 0;
  const char *path = shmh_opt_string(L, 1, "path", NULL);
  const char *abs = NULL;
  if (lua_getfield(L, 1, "abstract") != LUA_TNIL) {
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_argerror(L, 1, lua_pushfstring(L, "option 'abstract' must be a string, got %s",
                                          luaL_typename(L, -1)));
    abs = lua_tolstring(L, -1, &alen); /* anchored in the option table */
  }
  lua_pop(L, 1);
  if ((path == NULL) == (abs == NULL)) luaL_argerror(L, 1, "give exactly one of 'path' and 'abstract'");
  const char *type = shmh_opt_string(L, 1, "type", "stream");
  if (strcmp(type, "stream") == 0) t->type = SOCK_STREAM;
  else if (strcmp(type, "seqpacket") == 0) t->type = SOCK_SEQPACKET;
  else luaL_argerror(L, 1, lua_pushfstring(L, "option 'type' must be \"stream\" or \"seqpacket\", got \"%s\"", type));
  int rc = path ? shmh_unix_addr_path(&t->addr, path) : shmh_unix_addr_abstract(&t->addr, abs, alen);
  if (rc == -ENAMETOOLONG)
    luaL_argerror(L, 1, path ? "option 'path' is too long (at most 107 bytes)"
                             : "option 'abstract' is too long (at most 107 bytes)");
  if (rc < 0) luaL_argerror(L, 1, path ? "option 'path' must not be empty" : "option 'abstract' must not be empty");
  shmh_unix_addr_format(&t->addr, t->name, sizeof t->name);
}

/* shm.unix.listen{path=|abstract=, type=, mode=, allow_uids=, backlog=, keep=} */
static int unix_listen(lua_State *L) {
  static const char *const known[] = {"path", "abstract", "type", "mode", "allow_uids",
                                      "backlog", "keep", NULL};
  luaL_checktype(L, 1, LUA_TTABLE);
  shmh_check_options(L, 1, known);
  struct target t;
  unix_target(L, &t);
  mode_t mode = shmh_opt_mode(L, 1, "mode", 0600);
  lua_Integer backlog = shmh_opt_integer(L, 1, "backlog", SOMAXCONN);
  luaL_argcheck(L, backlog >= 1 && backlog <= 65535, 1, "option 'backlog' must be 1 .. 65535");
  int keep = shmh_opt_bool(L, 1, "keep", 0);
  int nallow = 0;
  uid_t *allow = NULL;
  if (lua_getfield(L, 1, "allow_uids") != LUA_TNIL) {
    if (!lua_istable(L, -1)) luaL_argerror(L, 1, "option 'allow_uids' must be a table of uids");
    lua_Integer n = luaL_len(L, -1);
    luaL_argcheck(L, n >= 0 && n <= 65536, 1, "option 'allow_uids' is too long");
    /* Collected in a userdata first so a bad entry raising cannot leak the array. */
    allow = lua_newuserdatauv(L, sizeof(uid_t) * (size_t)(n ? n : 1), 0);
    for (lua_Integer i = 1; i <= n; i++) {
      lua_geti(L, -2, i);
      int isint;
      lua_Integer v = lua_tointegerx(L, -1, &isint);
      if (!isint || lua_type(L, -1) != LUA_TNUMBER || v < 0 || v > 0xfffffffe)
        luaL_argerror(L, 1, lua_pushfstring(L, "allow_uids[%d] must be a uid (a non-negative integer)", (int)i));
      allow[nallow++] = (uid_t)v;
      lua_pop(L, 1);
    }
  }
  int top = lua_gettop(L);
  shmh_sock_ud *u = shmh_sock_newud(L);
  int replaced = 0;
  int fd = shmh_unix_listen(&t.addr, t.type, mode, (int)backlog, &replaced);
  if (fd == -EEXIST) {
    lua_pushnil(L);
    lua_pushfstring(L, "listen %s: %s (not a socket; left untouched)", t.name, strerror(EEXIST));
    lua_pushinteger(L, EEXIST);
    return 3;
  }
  if (fd < 0) return shmh_fail(L, -fd, "listen", t.name);
  if (replaced)
    fprintf(stderr, "warning: listen %s: replaced a stale socket that had no listener\n", t.name);
  int handle = 0;
  if (!t.addr.abstract && !keep) {
    handle = shmh_cleanup_add(SHMH_CLEANUP_PATH, t.addr.sun.sun_path, 0);
    if (handle < 0) handle = 0;
  }
  int rc = shmh_sock_attach(L, u, fd, t.type, 1, t.name);
  if (rc < 0) {
    if (handle > 0) shmh_cleanup_remove(handle);
    else if (!t.addr.abstract && !keep) unlink(t.addr.sun.sun_path);
    return shmh_fail(L, -rc, "listen", t.name);
  }
  u->s->cleanup = handle;
  u->s->keep = keep;
  if (nallow > 0) {
    u->s->allow = malloc(sizeof(uid_t) * (size_t)nallow);
    if (u->s->allow != NULL) {
      memcpy(u->s->allow, allow, sizeof(uid_t) * (size_t)nallow);
      u->s->nallow = nallow;
    }
  }
  lua_settop(L, top + 1);
  return 1;
}

/* ------------------------------------------------------------ connect with wait */

/* A connect waiting for its listener: a timer that retries, owned by a userdata anchored in
 * the registry while it runs (so lua_close finalizes it and closes the timer at exit). */
typedef struct connwait {
  uv_timer_t timer;
  struct target t;
  double deadline;
  lua_State *task;
  lua_State *L;
  int ref;
  int ud_gone, handle_closed, closing;
} connwait;

typedef struct {
  connwait *c;
} connwait_ud;

static int unix_retryable(int err) {
  /* No path yet, no listener yet, or a listener whose backlog is full for now. */
  return err == -ENOENT || err == -ECONNREFUSED || err == -EAGAIN;
}

static void connwait_close_cb(uv_handle_t *h) {
  connwait *c = shmh_container_of((uv_timer_t *)h, connwait, timer);
  c->handle_closed = 1;
  if (c->ud_gone) free(c);
}

static void connwait_stop(connwait *c) {
  if (c->closing) return;
  c->closing = 1;
  uv_close((uv_handle_t *)&c->timer, connwait_close_cb);
}

struct made {
  struct target *t;
  int fd;
};

static int connwait_make(lua_State *L) {
  struct made *m = lua_touserdata(L, 1);
  shmh_sock_ud *u = shmh_sock_newud(L);
  int fd = m->fd;
  m->fd = -1;
  int rc = shmh_sock_attach(L, u, fd, m->t->type, 0, m->t->name);
  if (rc < 0) return shmh_fail(L, -rc, "connect", m->t->name);
  return 1;
}

static void connwait_cb(uv_timer_t *h) {
  connwait *c = shmh_container_of(h, connwait, timer);
  if (c->closing) return;
  int fd = shmh_unix_connect(&c->t.addr, c->t.type);
  if (fd < 0 && unix_retryable(fd) && shmh_rt_now() < c->deadline) return;
  lua_State *L = c->L, *task = c->task;
  connwait_stop(c);
  int base = lua_gettop(L), n;
  if (fd >= 0) {
    struct made m = {&c->t, fd};
    lua_pushcfunction(L, connwait_make);
    lua_pushlightuserdata(L, &m);
    if (lua_pcall(L, 1, LUA_MULTRET, 0) != LUA_OK) {
      if (m.fd >= 0) close(m.fd);
      lua_pushnil(L);
      lua_insert(L, -2);
    }
    n = lua_gettop(L) - base;
  } else {
    n = shmh_fail(L, -fd, "connect", c->t.name);
  }
  /* The waiter no longer needs its anchor: the userdata may be collected now. */
  luaL_unref(L, LUA_REGISTRYINDEX, c->ref);
  c->ref = LUA_NOREF;
  if (!lua_checkstack(task, n + 2)) {
    lua_settop(L, base);
    return;
  }
  lua_xmove(L, task, n);
  shmh_rt_wake(task, n);
}

static int connwait_gc(lua_State *L) {
  connwait_ud *u = luaL_checkudata(L, 1, CONNWAIT);
  connwait *c = u->c;
  if (c == NULL) return 0;
  u->c = NULL;
  connwait_stop(c);
  c->ud_gone = 1;
  if (c->handle_closed) free(c);
  return 0;
}

/* Starts the retries for the task L and yields it; connwait_cb resumes it. */
static int unix_connect_wait(lua_State *L, const struct target *t, double wait) {
  connwait_ud *u = lua_newuserdatauv(L, sizeof *u, 0);
  u->c = NULL;
  luaL_setmetatable(L, CONNWAIT);
  connwait *c = calloc(1, sizeof *c);
  if (c == NULL) return shmh_fail(L, ENOMEM, "connect", t->name);
  uv_timer_init(shmh_rt_loop(L), &c->timer);
  c->timer.data = NULL;
  c->t = *t;
  c->deadline = shmh_rt_now() + wait;
  c->task = L;
  c->L = shmh_rt_main(L);
  u->c = c;
  c->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  uv_timer_start(&c->timer, connwait_cb, CONNWAIT_MS, CONNWAIT_MS);
  return shmh_rt_yield(L);
}

/* shm.unix.connect{path=|abstract=, type=, wait=S} */
static int unix_connect(lua_State *L) {
  static const char *const known[] = {"path", "abstract", "type", "wait", NULL};
  luaL_checktype(L, 1, LUA_TTABLE);
  shmh_check_options(L, 1, known);
  struct target t;
  unix_target(L, &t);
  double wait = shmh_opt_number(L, 1, "wait", 0);
  luaL_argcheck(L, !isnan(wait) && wait >= 0, 1, "option 'wait' must be a non-negative number of seconds");
  /* A call that may wait needs a task, whether or not this attempt would have to. */
  if (wait > 0) shmh_rt_task(L, "unix.connect{wait=}");
  shmh_sock_ud *u = shmh_sock_newud(L);
  int fd = shmh_unix_connect(&t.addr, t.type);
  if (fd >= 0) {
    int rc = shmh_sock_attach(L, u, fd, t.type, 0, t.name);
    if (rc < 0) return shmh_fail(L, -rc, "connect", t.name);
    return 1;
  }
  lua_pop(L, 1);
  if (wait > 0 && unix_retryable(fd)) return unix_connect_wait(L, &t, wait);
  return shmh_fail(L, -fd, "connect", t.name);
}

void shmh_bind_unix(lua_State *L) {
  shmh_sock_register(L);
  shmh_rawfd_register(L);
  static const luaL_Reg meta[] = {{"__gc", connwait_gc}, {NULL, NULL}};
  shmh_newtype(L, CONNWAIT, NULL, meta);
  static const luaL_Reg fns[] = {{"listen", unix_listen}, {"connect", unix_connect}, {NULL, NULL}};
  luaL_newlib(L, fns);
  lua_setfield(L, -2, "unix");
}
