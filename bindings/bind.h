/*
 * What every binding file shares: the type names, the module's registration functions, the
 * helpers for option tables and for the `nil, message, errno` convention, and the small C API
 * one binding offers another (a socket sends a segment's descriptor; a mutex lives in a
 * segment).
 */
#ifndef SHMHOST_BIND_H
#define SHMHOST_BIND_H

#include <stddef.h>
#include <sys/types.h>
#include <lua.h>
#include <lauxlib.h>

#include "runtime.h"

/* Type names: luaL_checkudata errors then read "shmhost.mutex expected, got nil". */
#define SHMH_SEGMENT "shmhost.segment"
#define SHMH_LAYOUT  "shmhost.layout"
#define SHMH_VIEW    "shmhost.view"
#define SHMH_ARRAY   "shmhost.array"
#define SHMH_MUTEX   "shmhost.mutex"
#define SHMH_SEM     "shmhost.sem"
#define SHMH_EVENTFD "shmhost.eventfd"
#define SHMH_SOCKET  "shmhost.socket"
#define SHMH_FD      "shmhost.fd"
#define SHMH_RING    "shmhost.ring"

/* How long a wait in a task spins on a non-blocking try before it sleeps (seconds). A peer
 * that is running on another core answers a ping-pong within microseconds; sleeping instead
 * costs a hand-off through the loop (and a thread, for semaphores) and, on an idle core, the
 * wake-up from a C-state: tens of microseconds. The bound keeps the loop responsive. */
#define SHMH_WAIT_SPIN 30e-6

/* Each binding file adds its functions to the module table at the top of the stack. */
void shmh_bind_task(lua_State *L);     /* runtime.c: spawn, sleep, now, exit, pid */
void shmh_bind_errno(lua_State *L);    /* bind.c: shmhost.errno */
void shmh_bind_segment(lua_State *L);  /* segment.c: open, sysv, sysv_attach, ftok, memfd */
void shmh_bind_layout(lua_State *L);   /* layout.c: layout */
void shmh_bind_mutex(lua_State *L);    /* mutex.c: mutex */
void shmh_bind_sem(lua_State *L);      /* sem.c: sem, sem_open */
void shmh_bind_eventfd(lua_State *L);  /* eventfd.c: eventfd */
void shmh_bind_unix(lua_State *L);     /* unix.c: unix.listen, unix.connect */
void shmh_bind_ring(lua_State *L);     /* ring.c: ring.create, ring.attach */

/* luaopen_shmhost builds the module; the runtime preloads it and sets the global. */
int luaopen_shmhost(lua_State *L);

/* Pushes nil, "CALL OBJ: strerror(err)", err and returns 3 (err is a positive errno). OBJ may
 * be NULL. */
int shmh_fail(lua_State *L, int err, const char *call, const char *obj);

/* Raises "offset OFF is not a multiple of ALIGN (the alignment of WHAT)" at argument `arg`
 * unless it is one. Objects the kernel or the CPU touch atomically (a futex word, the word
 * inside a mutex or semaphore, a ring's indices) must be naturally aligned; a segment's
 * mapping starts on a page, so an aligned offset is an aligned address. */
void shmh_check_aligned(lua_State *L, int arg, lua_Integer off, lua_Integer align,
                        const char *what);

/* Pushes nil, "timeout", ETIMEDOUT and returns 3: what every wait that timed out returns. */
int shmh_timeout(lua_State *L);

/* Creates the metatable NAME with methods as __index, metamethods, and __name; pops it. */
void shmh_newtype(lua_State *L, const char *name, const luaL_Reg *methods,
                  const luaL_Reg *metamethods);

/* Option tables. `t` is the stack index of a table or nil/none (then every default applies).
 * shmh_check_options raises "bad argument #N (unknown option 'x')" for a key not in `known`
 * (a NULL-terminated list), so a misspelt option never passes silently. The getters raise
 * when a value has the wrong type, naming the option. */
void shmh_check_options(lua_State *L, int t, const char *const known[]);
int shmh_opt_bool(lua_State *L, int t, const char *key, int def);
lua_Integer shmh_opt_integer(lua_State *L, int t, const char *key, lua_Integer def);
double shmh_opt_number(lua_State *L, int t, const char *key, double def);
const char *shmh_opt_string(lua_State *L, int t, const char *key, const char *def);
/* `mode` as an octal string ("0600") or an integer, 0 to 07777. */
mode_t shmh_opt_mode(lua_State *L, int t, const char *key, mode_t def);
/* A time in seconds at stack index i: nil/none gives `def`; negative or NaN raises. */
double shmh_check_seconds(lua_State *L, int i, double def);

/* ---- what one binding offers the others ---- */

/* segment.c. A segment is a mapping; the pointer returned is valid while the segment
 * userdata is alive and not closed. shmh_segment_ptr raises (naming argument `arg`) when the
 * value at `idx` is not an open segment, when [off, off+len) is outside it, when `write` is
 * set on a read-only mapping, or when a peer has truncated it. */
typedef struct shmh_seg shmh_seg;
shmh_seg *shmh_segment_check(lua_State *L, int idx);
void *shmh_segment_ptr(lua_State *L, int idx, lua_Integer off, size_t len, int write, int arg);
/* After touching segment memory directly, raises if the access hit a truncated mapping. */
void shmh_segment_touched(lua_State *L, shmh_seg *seg);
/* Adopts a descriptor received from a peer as a mapped segment of kind "memfd" or "posix"
 * (size from fstat); pushes it and returns 1, or pushes nil, msg, errno and returns 3 (the fd
 * is closed then). */
int shmh_segment_push_fd(lua_State *L, int fd);

/* futex.c: the methods seg:futex_wait and seg:futex_wake (segment.c lists them). A segment
 * keeps the list of its waiting threads in a slot that shmh_segment_futexes returns (raising
 * when the segment is closed); segment.c calls shmh_futex_shut on that list when the segment
 * closes, which resumes waiting tasks with nil, "closed" when `wake` is set (not from __gc). */
struct shmh_futex_waiter;
int shmh_segment_futex_wait(lua_State *L);
int shmh_segment_futex_wake(lua_State *L);
struct shmh_futex_waiter **shmh_segment_futexes(lua_State *L, int idx);
void shmh_futex_shut(struct shmh_futex_waiter **list, int wake);

/* mutex.c, sem.c: push the sync object that lives at `off` in the segment at `segidx` (the
 * object keeps the segment alive through its user value). Used by layout views. */
void shmh_mutex_push(lua_State *L, int segidx, lua_Integer off);
void shmh_sem_push(lua_State *L, int segidx, lua_Integer off);

/* layout.c, layout_view.c. A layout userdata holds a finished struct shmh_layout
 * (host/core/layout.h): shmh_layout_check returns it or raises. shmh_view_push pushes a view
 * of the layout at `layidx` over the segment at `segidx` from `off` (the caller has checked
 * bounds and alignment); the view keeps both alive. shmh_bind_view registers the view and
 * array types (called by shmh_bind_layout). */
struct shmh_layout;
const struct shmh_layout *shmh_layout_check(lua_State *L, int idx);
void shmh_view_push(lua_State *L, int segidx, int layidx, lua_Integer off);
void shmh_bind_view(lua_State *L);

/* eventfd.c: adopts an eventfd descriptor; pushes the object (returns 1) or fails (3). */
int shmh_eventfd_push_fd(lua_State *L, int fd);

/* unix.c: adopts a connected socket descriptor. */
int shmh_socket_push_fd(lua_State *L, int fd);

/* The descriptor of one object of each type, raising when it is closed (-1 for a System V
 * segment, which has none). shmh_object_fd dispatches on the type. */
int shmh_segment_fd(lua_State *L, int idx);
int shmh_eventfd_fd(lua_State *L, int idx);
int shmh_socket_fd(lua_State *L, int idx);
int shmh_rawfd_fd(lua_State *L, int idx);

/* Any shmhost object that owns a descriptor (segment with an fd, eventfd, socket, raw fd):
 * its fd, or -1 when the value is not one (raises when it is one but closed). */
int shmh_object_fd(lua_State *L, int idx);

#endif
