/*
 * shmhost.socket: listeners and connections of AF_UNIX stream and seqpacket sockets on the
 * loop. One uv_poll_t per socket watches for readability while a task waits in accept/recv or
 * a callback is set (on_accept/on_recv), and for writability while a task waits to finish a
 * send; otherwise it is stopped, so an idle socket never keeps the process alive.
 *
 * A uv callback may resume a task at once (shmh_rt_wake) and that task may close the socket
 * or wait again, so the callbacks re-read the state after every wake and never hold on to
 * anything the task can change.
 */
#include "unix_sock.h"
#include "sync.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SOCK_RECV_DEFAULT 65536
#define SOCK_RECV_LIMIT (1 << 30)
/* Messages or connections handled per poll callback before the loop gets a turn. */
#define SOCK_BUDGET 16

static shmh_sock_ud *sock_ud(lua_State *L, int idx) {
  return luaL_checkudata(L, idx, SHMH_SOCKET);
}

static shmh_sock *sock_check(lua_State *L, int idx) {
  shmh_sock_ud *u = sock_ud(L, idx);
  if (u->s == NULL || u->s->fd < 0) luaL_argerror(L, idx, "socket is closed");
  return u->s;
}

static void sock_poll_cb(uv_poll_t *h, int status, int events);

/* Points the poll at `ev`. */
static void sock_arm(shmh_sock *s, int ev) {
  if (ev == s->events) return;
  if (ev == 0) uv_poll_stop(&s->poll);
  else if (uv_poll_start(&s->poll, ev, sock_poll_cb) != 0) ev = 0;
  s->events = ev;
}

/* Watches for what the waiting tasks and callbacks need. Readability stays watched between
 * two waits, with the handle unreferenced so that it keeps nothing alive: a request-reply
 * exchange then costs no epoll_ctl per message. It is dropped when it fires with no one
 * interested (level-triggered, it would fire again at once). Writability is watched only
 * while a send waits, since a socket with room is writable all the time. */
static void sock_update(shmh_sock *s) {
  if (s->fd < 0) return;
  int want = 0;
  if (s->rwait != NULL || s->on_ref != LUA_NOREF) want |= UV_READABLE;
  if (s->wwait != NULL) want |= UV_WRITABLE;
  sock_arm(s, want | (s->events & UV_READABLE));
  if (want) uv_ref((uv_handle_t *)&s->poll);
  else uv_unref((uv_handle_t *)&s->poll);
}

/* Drops the callback and the anchor that kept a socket with a callback alive: a connection
 * whose only reference is its own on_recv must go on receiving, not be collected. */
static void sock_drop_cb(shmh_sock *s) {
  if (s->on_ref != LUA_NOREF) luaL_unref(s->L, LUA_REGISTRYINDEX, s->on_ref);
  if (s->self_ref != LUA_NOREF) luaL_unref(s->L, LUA_REGISTRYINDEX, s->self_ref);
  s->on_ref = s->self_ref = LUA_NOREF;
}

static void sock_close_cb(uv_handle_t *h) {
  shmh_sock *s = shmh_container_of((uv_poll_t *)h, shmh_sock, poll);
  s->handle_closed = 1;
  if (s->ud_gone) {
    free(s->allow);
    free(s);
  }
}

/* Ends a pending send: drops the anchored string and the duplicated descriptors. */
static void sock_send_clear(shmh_sock *s) {
  if (s->wref != LUA_NOREF) luaL_unref(s->L, LUA_REGISTRYINDEX, s->wref);
  s->wref = LUA_NOREF;
  for (int i = 0; i < s->wnfds; i++) close(s->wfds[i]);
  free(s->wfds);
  s->wfds = NULL;
  s->wnfds = 0;
  s->wwait = NULL;
}

static void wake_closed(lua_State *L, lua_State *t) {
  if (t == NULL || shmh_rt_exiting(L)) return;
  lua_pushnil(t);
  lua_pushliteral(t, "closed");
  shmh_rt_wake(t, 2);
}

/* Closes the socket; never raises. `explicit` is set for close() and __close, which also
 * remove a path this process made (unless kept) and wake the waiting tasks; __gc leaves the
 * path to the cleanup at exit, as for every created object. */
static void sock_shut(shmh_sock *s, int explicit) {
  if (s == NULL || s->fd < 0) return;
  int fd = s->fd;
  s->fd = -1;
  s->events = 0;
  /* uv_close takes the descriptor out of epoll at once, so closing it next is safe. */
  uv_close((uv_handle_t *)&s->poll, sock_close_cb);
  close(fd);
  sock_drop_cb(s);
  lua_State *r = s->rwait, *w = s->wwait;
  s->rwait = NULL;
  sock_send_clear(s);
  if (s->cleanup > 0 && explicit) {
    if (s->keep) shmh_cleanup_forget(s->cleanup);
    else shmh_cleanup_remove(s->cleanup);
    s->cleanup = 0;
  }
  if (explicit) {
    wake_closed(s->L, r);
    wake_closed(s->L, w);
  }
}

shmh_sock_ud *shmh_sock_newud(lua_State *L) {
  shmh_sock_ud *u = lua_newuserdatauv(L, sizeof *u, 0);
  u->s = NULL;
  luaL_setmetatable(L, SHMH_SOCKET);
  return u;
}

int shmh_sock_attach(lua_State *L, shmh_sock_ud *u, int fd, int type, int listening,
                     const char *name) {
  shmh_sock *s = calloc(1, sizeof *s);
  if (s == NULL) {
    close(fd);
    return -ENOMEM;
  }
  /* uv_poll needs a non-blocking descriptor. For a received socket the flag is shared with
   * the sender's copy (one open file description). */
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0 && !(fl & O_NONBLOCK)) fcntl(fd, F_SETFL, fl | O_NONBLOCK);
  int rc = uv_poll_init(shmh_rt_loop(L), &s->poll, fd);
  if (rc < 0) {
    free(s);
    close(fd);
    return rc;
  }
  s->poll.data = NULL;
  s->fd = fd;
  s->type = type;
  s->listening = listening;
  s->L = shmh_rt_main(L);
  s->on_ref = s->self_ref = s->wref = LUA_NOREF;
  snprintf(s->name, sizeof s->name, "%s", name);
  u->s = s;
  return 0;
}

/* ------------------------------------------------------------ protected construction */

/* Results built on a thread that may not raise (a suspended task, or the main thread inside a
 * uv callback) are built in a protected call, so an out-of-memory error becomes a returned
 * message and every received descriptor not yet adopted is closed. */
static int sock_protect(lua_State *L, lua_CFunction f, void *arg) {
  int base = lua_gettop(L);
  lua_pushcfunction(L, f);
  lua_pushlightuserdata(L, arg);
  if (lua_pcall(L, 1, LUA_MULTRET, 0) != LUA_OK) return -1;
  return lua_gettop(L) - base;
}

/* ------------------------------------------------------------ receiving */

struct rx {
  shmh_sock *s;
  size_t max;
  int fds[SHMH_UNIX_MAX_FDS];
  int nfds;
  int status; /* 0: bytes and objects pushed; 1: the peer closed; < 0: -errno */
};

static int sock_rx_run(lua_State *L) {
  struct rx *r = lua_touserdata(L, 1);
  /* Size the buffer to what is queued, so recv(1 << 30) does not allocate a gigabyte for a
   * few bytes. When nothing is queued yet, a stream read takes a usual chunk (a stream may
   * split data anyway), but a seqpacket read keeps the full max: a message arriving in
   * between must not be cut shorter than the caller allowed. */
  size_t want = r->max;
  int queued = shmh_unix_pending(r->s->fd);
  if (queued > 0 && (size_t)queued < want) want = (size_t)queued;
  else if (queued <= 0 && r->s->type != SOCK_SEQPACKET && want > SOCK_RECV_DEFAULT)
    want = SOCK_RECV_DEFAULT;
  luaL_Buffer b;
  char *p = luaL_buffinitsize(L, &b, want);
  ssize_t n = shmh_unix_recv(r->s->fd, p, want, r->fds, SHMH_UNIX_MAX_FDS, &r->nfds);
  if (n < 0) {
    /* A peer that died with data we had not read resets the connection: it is gone all the
     * same. */
    r->status = n == -ECONNRESET ? 1 : (int)n;
    return 0;
  }
  /* Zero bytes is the end of a stream. A seqpacket socket can also carry an empty message;
   * the peer's hang-up tells the two apart. */
  if (n == 0 && r->nfds == 0 &&
      (r->s->type != SOCK_SEQPACKET || shmh_unix_peer_gone(r->s->fd))) {
    r->status = 1;
    return 0;
  }
  luaL_pushresultsize(&b, (size_t)n);
  lua_createtable(L, r->nfds, 0);
  for (int i = 0; i < r->nfds; i++) {
    shmh_rawfd_adopt(L, r->fds[i]);
    r->fds[i] = -1;
    lua_rawseti(L, -2, i + 1);
  }
  r->status = 0;
  return 2;
}

/* Receives once into L's stack. Returns the number of results pushed (bytes, objs; or nil,
 * "closed"; or nil, msg, errno), or 0 with r->status == -EAGAIN when nothing is there. */
static int sock_rx(lua_State *L, struct rx *r) {
  r->nfds = 0;
  r->status = 0;
  int n = sock_protect(L, sock_rx_run, r);
  if (n < 0) {
    for (int i = 0; i < r->nfds; i++)
      if (r->fds[i] >= 0) close(r->fds[i]);
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
  }
  if (r->status == 0) return n;
  lua_settop(L, lua_gettop(L) - n);
  if (r->status == -EAGAIN) return 0;
  if (r->status == 1) {
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
  }
  if (r->status == -EMSGSIZE) {
    lua_pushnil(L);
    lua_pushfstring(L, "recv %s: descriptors lost (MSG_CTRUNC: control data truncated or "
                       "descriptor limit reached); the message was dropped and every "
                       "descriptor that came with it closed", r->s->name);
    lua_pushinteger(L, EMSGSIZE);
    return 3;
  }
  return shmh_fail(L, -r->status, "recv", r->s->name);
}

/* Hands n results on the main thread to the waiting task `t`. */
static void sock_hand_over(lua_State *L, lua_State *t, int n) {
  if (!lua_checkstack(t, n + 2)) {
    lua_pop(L, n);
    return;
  }
  lua_xmove(L, t, n);
  shmh_rt_wake(t, n);
}

/* Starts the callback in `ref` with the n results on L's stack as a task. */
static void sock_spawn_cb(lua_State *L, int ref, int n) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
  lua_insert(L, -(n + 1));
  shmh_rt_spawn(L, n);
}

static void sock_readable(shmh_sock *s) {
  lua_State *L = s->L;
  for (int budget = SOCK_BUDGET; budget > 0; budget--) {
    if (s->fd < 0 || (s->rwait == NULL && s->on_ref == LUA_NOREF)) return;
    struct rx r = {.s = s, .max = s->rwait ? s->rmax : SOCK_RECV_DEFAULT};
    int n = sock_rx(L, &r);
    if (n == 0) return;
    int final = r.status != 0;
    if (s->rwait != NULL) {
      lua_State *t = s->rwait;
      s->rwait = NULL;
      sock_update(s);
      sock_hand_over(L, t, n);
    } else {
      lua_rawgeti(L, LUA_REGISTRYINDEX, s->on_ref);
      lua_insert(L, -(n + 1));
      if (final) {
        /* The callback hears of the end once, then is dropped, so the loop can finish. */
        sock_drop_cb(s);
        sock_update(s);
      }
      shmh_rt_spawn(L, n);
    }
    if (final) return;
  }
}

/* ------------------------------------------------------------ accepting */

/* Accepts the next connection from an allowed uid: the descriptor, -EAGAIN, or -errno.
 * Connections from other uids are closed at once, with a warning. */
static int sock_accept_one(shmh_sock *s) {
  for (;;) {
    int fd = shmh_unix_accept(s->fd);
    if (fd < 0) return fd;
    struct shmh_unix_cred c;
    if (shmh_unix_peercred(fd, &c) < 0) {
      close(fd);
      continue;
    }
    int ok = c.uid == geteuid();
    for (int i = 0; i < s->nallow && !ok; i++) ok = s->allow[i] == c.uid;
    if (ok) return fd;
    fprintf(stderr, "warning: %s: refused a connection from uid %ld (pid %ld): not our uid "
                    "and not in allow_uids\n", s->name, (long)c.uid, (long)c.pid);
    close(fd);
  }
}

struct conn {
  shmh_sock *parent;
  int fd;
};

static int sock_conn_run(lua_State *L) {
  struct conn *c = lua_touserdata(L, 1);
  shmh_sock_ud *u = shmh_sock_newud(L);
  int fd = c->fd;
  c->fd = -1;
  int rc = shmh_sock_attach(L, u, fd, c->parent->type, 0, c->parent->name);
  if (rc < 0) return shmh_fail(L, -rc, "accept", c->parent->name);
  return 1;
}

/* Pushes the object for an accepted descriptor (or nil, msg[, errno]); never raises. */
static int sock_push_conn(lua_State *L, shmh_sock *parent, int fd) {
  struct conn c = {parent, fd};
  int n = sock_protect(L, sock_conn_run, &c);
  if (n >= 0) return n;
  if (c.fd >= 0) close(c.fd);
  lua_pushnil(L);
  lua_insert(L, -2);
  return 2;
}

static void sock_acceptable(shmh_sock *s) {
  lua_State *L = s->L;
  for (int budget = SOCK_BUDGET; budget > 0; budget--) {
    if (s->fd < 0 || (s->rwait == NULL && s->on_ref == LUA_NOREF)) return;
    int fd = sock_accept_one(s);
    if (fd == -EAGAIN) return;
    int n;
    if (fd < 0) {
      n = shmh_fail(L, -fd, "accept", s->name);
      if (s->rwait == NULL) {
        /* A failing accept (EMFILE, say) leaves the listener readable and would fire again
         * at once, forever: the callback hears of it once and is dropped; it may set itself
         * again when it has made room. */
        lua_rawgeti(L, LUA_REGISTRYINDEX, s->on_ref);
        lua_insert(L, -(n + 1));
        sock_drop_cb(s);
        sock_update(s);
        shmh_rt_spawn(L, n);
        return;
      }
    } else {
      n = sock_push_conn(L, s, fd);
    }
    if (s->rwait != NULL) {
      lua_State *t = s->rwait;
      s->rwait = NULL;
      sock_update(s);
      sock_hand_over(L, t, n);
    } else {
      sock_spawn_cb(L, s->on_ref, n);
    }
  }
}

/* ------------------------------------------------------------ sending */

/* A peer that is gone is `nil, "closed", errno`, the way a waiting recv hears of it. */
static int sock_send_fail(lua_State *L, shmh_sock *s, int err) {
  if (err == EPIPE || err == ECONNRESET) {
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    lua_pushinteger(L, err);
    return 3;
  }
  return shmh_fail(L, err, "send", s->name);
}

static void sock_writable(shmh_sock *s) {
  if (s->wwait == NULL || s->fd < 0) return;
  ssize_t n = shmh_unix_send(s->fd, s->wbuf + s->woff, s->wlen - s->woff, s->wfds, s->wnfds);
  if (n == -EAGAIN || n == 0) return;
  if (n > 0) {
    /* The descriptors went with these bytes; the rest goes without them. */
    for (int i = 0; i < s->wnfds; i++) close(s->wfds[i]);
    s->wnfds = 0;
    s->woff += (size_t)n;
    if (s->woff < s->wlen) return;
  }
  lua_State *t = s->wwait;
  size_t total = s->wlen;
  sock_send_clear(s);
  sock_update(s);
  if (n < 0) {
    shmh_rt_wake(t, sock_send_fail(t, s, (int)-n));
  } else {
    lua_pushinteger(t, (lua_Integer)total);
    shmh_rt_wake(t, 1);
  }
}

static void sock_poll_cb(uv_poll_t *h, int status, int events) {
  shmh_sock *s = shmh_container_of(h, shmh_sock, poll);
  if (s->fd < 0) return;
  if (status < 0) {
    /* libuv stops the handle on POLLERR (a peer that died with unread data sets the
     * socket's error). Let the calls themselves report it: they return the error or EOF. */
    s->events = 0;
    events = UV_READABLE | UV_WRITABLE;
  }
  if (events & UV_WRITABLE) sock_writable(s);
  if (s->fd >= 0 && (events & (UV_READABLE | UV_DISCONNECT))) {
    if (s->rwait == NULL && s->on_ref == LUA_NOREF) sock_arm(s, s->events & ~UV_READABLE);
    else if (s->listening) sock_acceptable(s);
    else sock_readable(s);
  }
  sock_update(s);
}

/* ------------------------------------------------------------ methods */

static int sock_accept(lua_State *L) {
  shmh_sock *s = sock_check(L, 1);
  if (!s->listening) return luaL_argerror(L, 1, "socket is not listening (accept needs a listener)");
  shmh_rt_task(L, "srv:accept");
  if (s->rwait) return luaL_error(L, "srv:accept: another task is already waiting on this listener");
  if (s->on_ref != LUA_NOREF)
    return luaL_error(L, "srv:accept: the listener has a callback (on_accept); stop it with on_accept(nil) first");
  /* The object exists before the connection is taken, so no error can lose it. */
  shmh_sock_ud *u = shmh_sock_newud(L);
  int fd = sock_accept_one(s);
  if (fd >= 0) {
    int rc = shmh_sock_attach(L, u, fd, s->type, 0, s->name);
    if (rc < 0) return shmh_fail(L, -rc, "accept", s->name);
    return 1;
  }
  lua_pop(L, 1);
  if (fd != -EAGAIN) return shmh_fail(L, -fd, "accept", s->name);
  s->rwait = L;
  sock_update(s);
  return shmh_rt_yield(L);
}

/* Polls the descriptor without blocking for up to SHMH_WAIT_SPIN seconds; true once it is
 * readable (or hung up: the read then tells). */
static int sock_spin_readable(int fd) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  double until = shmh_rt_now() + SHMH_WAIT_SPIN;
  do {
    if (poll(&p, 1, 0) > 0) return 1;
    for (int i = 0; i < 16; i++) shmh_cpu_relax();
  } while (shmh_rt_now() < until);
  return 0;
}

static int sock_recv(lua_State *L) {
  shmh_sock *s = sock_check(L, 1);
  lua_Integer max = luaL_optinteger(L, 2, SOCK_RECV_DEFAULT);
  luaL_argcheck(L, max >= 1 && max <= SOCK_RECV_LIMIT, 2, "max must be 1 .. 2^30 bytes");
  if (s->listening) return luaL_argerror(L, 1, "socket is listening (use accept)");
  shmh_rt_task(L, "sock:recv");
  if (s->rwait) return luaL_error(L, "sock:recv: another task is already receiving on this socket");
  if (s->on_ref != LUA_NOREF)
    return luaL_error(L, "sock:recv: the socket has a callback (on_recv); stop it with on_recv(nil) first");
  struct rx r = {.s = s, .max = (size_t)max};
  int n = sock_rx(L, &r);
  if (n > 0) return n;
  /* Spin briefly before sleeping in the loop (SHMH_WAIT_SPIN says why). */
  if (sock_spin_readable(s->fd) && (n = sock_rx(L, &r)) > 0) return n;
  s->rwait = L;
  s->rmax = (size_t)max;
  sock_update(s);
  return shmh_rt_yield(L);
}

static int sock_send(lua_State *L) {
  static const char one_byte[1] = {0};
  shmh_sock *s = sock_check(L, 1);
  size_t len;
  const char *buf = luaL_checklstring(L, 2, &len);
  if (s->listening) return luaL_argerror(L, 1, "socket is listening (send needs a connection)");
  int fds[SHMH_UNIX_MAX_FDS], nfds = 0;
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 3);
    luaL_argcheck(L, n <= SHMH_UNIX_MAX_FDS, 3, "at most 253 objects in one message");
    for (lua_Integer i = 1; i <= n; i++) {
      lua_geti(L, 3, i);
      int fd = shmh_object_fd(L, -1);
      if (fd < 0 && lua_isinteger(L, -1)) {
        /* A plain descriptor number (from luv or io), checked to be open. */
        lua_Integer v = lua_tointeger(L, -1);
        if (v >= 0 && v <= 0x7fffffff && fcntl((int)v, F_GETFD) >= 0) fd = (int)v;
        else
          return luaL_argerror(L, 3, lua_pushfstring(L, "objs[%d] is not an open descriptor", (int)i));
      }
      if (fd < 0) {
        /* Name the type as scripts know it: "shmhost.segment" (System V) reads better than
         * "userdata". */
        const char *tname = luaL_typename(L, -1);
        if (luaL_getmetafield(L, -1, "__name") == LUA_TSTRING) tname = lua_tostring(L, -1);
        return luaL_argerror(L, 3, lua_pushfstring(L, "objs[%d] has no descriptor to send (%s)",
                                                   (int)i, tname));
      }
      fds[nfds++] = fd;
      lua_pop(L, 1);
    }
  }
  if (s->wwait != NULL) return luaL_error(L, "sock:send: another task is sending on this socket");
  /* Descriptors must ride on at least one byte of data; an empty message with objects sends a
   * single NUL byte, as C peers do by convention. */
  if (nfds > 0 && len == 0) {
    buf = one_byte;
    len = 1;
  }
  ssize_t n = shmh_unix_send(s->fd, buf, len, fds, nfds);
  if (n == (ssize_t)len) {
    lua_pushinteger(L, (lua_Integer)n);
    return 1;
  }
  if (n < 0 && n != -EAGAIN) return sock_send_fail(L, s, (int)-n);
  size_t done = n > 0 ? (size_t)n : 0;
  if (!shmh_rt_in_task(L) || !lua_isyieldable(L)) {
    /* Outside a task nothing may wait: report what went, as write(2) does. */
    if (done > 0) {
      lua_pushinteger(L, (lua_Integer)done);
      return 1;
    }
    return shmh_fail(L, EAGAIN, "send", s->name);
  }
  if (done == 0 && nfds > 0) {
    /* The script may close its objects while we wait: send duplicates. */
    s->wfds = malloc(sizeof(int) * (size_t)nfds);
    if (s->wfds == NULL) return shmh_fail(L, ENOMEM, "send", s->name);
    for (int i = 0; i < nfds; i++) {
      int d = fcntl(fds[i], F_DUPFD_CLOEXEC, 0);
      if (d < 0) {
        int err = errno;
        sock_send_clear(s);
        return shmh_fail(L, err, "send", s->name);
      }
      s->wfds[s->wnfds++] = d;
    }
  }
  lua_pushvalue(L, 2);
  s->wref = luaL_ref(L, LUA_REGISTRYINDEX);
  s->wbuf = buf;
  s->wlen = len;
  s->woff = done;
  s->wwait = L;
  sock_update(s);
  return shmh_rt_yield(L);
}

static int sock_set_cb(lua_State *L, int listener, const char *what) {
  shmh_sock *s = sock_check(L, 1);
  if (s->listening != listener)
    return luaL_argerror(L, 1, listener ? "socket is not listening" : "socket is listening (use on_accept)");
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TFUNCTION);
    if (s->rwait != NULL) return luaL_error(L, "%s: a task is waiting on this socket", what);
  }
  sock_drop_cb(s);
  if (!lua_isnoneornil(L, 2)) {
    lua_pushvalue(L, 2);
    s->on_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, 1);
    s->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  sock_update(s);
  lua_pushboolean(L, 1);
  return 1;
}

static int sock_on_accept(lua_State *L) { return sock_set_cb(L, 1, "srv:on_accept"); }
static int sock_on_recv(lua_State *L) { return sock_set_cb(L, 0, "sock:on_recv"); }

static int sock_peer(lua_State *L) {
  shmh_sock *s = sock_check(L, 1);
  struct shmh_unix_cred c;
  int rc = shmh_unix_peercred(s->fd, &c);
  if (rc < 0) return shmh_fail(L, -rc, "peer", s->name);
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, c.pid);
  lua_setfield(L, -2, "pid");
  lua_pushinteger(L, c.uid);
  lua_setfield(L, -2, "uid");
  lua_pushinteger(L, c.gid);
  lua_setfield(L, -2, "gid");
  return 1;
}

static int sock_keep(lua_State *L) {
  shmh_sock *s = sock_check(L, 1);
  if (s->cleanup > 0) shmh_cleanup_forget(s->cleanup);
  s->cleanup = 0;
  s->keep = 1;
  lua_pushboolean(L, 1);
  return 1;
}

static int sock_fdm(lua_State *L) {
  lua_pushinteger(L, sock_check(L, 1)->fd);
  return 1;
}

static int sock_close(lua_State *L) {
  sock_shut(sock_ud(L, 1)->s, 1);
  lua_pushboolean(L, 1);
  return 1;
}

static int sock_tbc(lua_State *L) {
  sock_shut(sock_ud(L, 1)->s, 1);
  return 0;
}

static int sock_gc(lua_State *L) {
  shmh_sock_ud *u = sock_ud(L, 1);
  shmh_sock *s = u->s;
  if (s == NULL) return 0;
  u->s = NULL;
  sock_shut(s, 0);
  s->ud_gone = 1;
  if (s->handle_closed) {
    free(s->allow);
    free(s);
  }
  return 0;
}

static int sock_tostring(lua_State *L) {
  shmh_sock_ud *u = sock_ud(L, 1);
  if (u->s == NULL || u->s->fd < 0) lua_pushliteral(L, SHMH_SOCKET " (closed)");
  else lua_pushfstring(L, SHMH_SOCKET " (%s %s %s, fd %d)",
                       u->s->type == SOCK_SEQPACKET ? "seqpacket" : "stream",
                       u->s->listening ? "listening on" : "connection on", u->s->name, u->s->fd);
  return 1;
}

int shmh_socket_fd(lua_State *L, int idx) { return sock_check(L, idx)->fd; }

/* Adopts a connected (or listening) socket received from a peer or made elsewhere. */
int shmh_socket_push_fd(lua_State *L, int fd) {
  shmh_sock_ud *u = shmh_sock_newud(L);
  int type, listening;
  int rc = shmh_unix_socktype(fd, &type, &listening);
  if (rc < 0) {
    close(fd);
    lua_pop(L, 1);
    return shmh_fail(L, -rc, "adopt socket", NULL);
  }
  /* Name it after its own address, or its peer's, when either is a named AF_UNIX one. */
  char name[112] = "socket";
  struct shmh_unix_addr a;
  memset(&a, 0, sizeof a);
  a.len = sizeof a.sun;
  if ((getsockname(fd, (struct sockaddr *)&a.sun, &a.len) == 0 && a.sun.sun_family == AF_UNIX &&
       a.len > offsetof(struct sockaddr_un, sun_path)) ||
      ((a.len = sizeof a.sun), getpeername(fd, (struct sockaddr *)&a.sun, &a.len) == 0 &&
       a.sun.sun_family == AF_UNIX && a.len > offsetof(struct sockaddr_un, sun_path))) {
    a.abstract = a.sun.sun_path[0] == '\0';
    shmh_unix_addr_format(&a, name, sizeof name);
  }
  rc = shmh_sock_attach(L, u, fd, type, listening, name);
  if (rc < 0) {
    lua_pop(L, 1);
    return shmh_fail(L, -rc, "adopt socket", NULL);
  }
  return 1;
}

void shmh_sock_register(lua_State *L) {
  static const luaL_Reg methods[] = {
    {"accept", sock_accept}, {"on_accept", sock_on_accept}, {"recv", sock_recv},
    {"on_recv", sock_on_recv}, {"send", sock_send}, {"peer", sock_peer}, {"keep", sock_keep},
    {"fd", sock_fdm}, {"close", sock_close}, {NULL, NULL}};
  static const luaL_Reg meta[] = {
    {"__gc", sock_gc}, {"__close", sock_tbc}, {"__tostring", sock_tostring}, {NULL, NULL}};
  shmh_newtype(L, SHMH_SOCKET, methods, meta);
}
