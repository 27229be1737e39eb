/*
 * What the files of the AF_UNIX binding share: the socket object (unix_sock.c), the raw
 * descriptor object and the typing of received descriptors (unix_fd.c), and the constructors
 * listen and connect (unix.c).
 */
#ifndef SHMHOST_UNIX_SOCK_H
#define SHMHOST_UNIX_SOCK_H

#include <sys/types.h>

#include "bind.h"
#include "cleanup.h"
#include "unixsock.h"

/* A socket's state outside the userdata: libuv needs the poll handle until its close callback
 * has run, which may be after the userdata is collected. Freed by whichever comes last. */
typedef struct shmh_sock {
  uv_poll_t poll;         /* data stays NULL; the owner is found with container_of */
  int fd;                 /* -1 once closed */
  int type;               /* SOCK_STREAM or SOCK_SEQPACKET */
  int listening;
  int events;             /* what the poll watches now */
  int ud_gone, handle_closed;
  lua_State *L;           /* the main thread */
  lua_State *rwait;       /* the task in accept() or recv() */
  size_t rmax;            /* its recv limit */
  int on_ref;             /* on_accept / on_recv function, or LUA_NOREF */
  int self_ref;           /* the userdata, anchored while a callback is set */
  lua_State *wwait;       /* the task in send() waiting for room */
  int wref;               /* the string being sent, kept alive while it waits */
  const char *wbuf;
  size_t wlen, woff;
  int *wfds;              /* duplicates of the descriptors still to send */
  int wnfds;
  int cleanup;            /* handle in the cleanup registry for a path we made, or 0 */
  int keep;
  uid_t *allow;           /* uids besides our own that a listener accepts */
  int nallow;
  char name[112];         /* the address, printable, for messages */
} shmh_sock;

typedef struct {
  shmh_sock *s;
} shmh_sock_ud;

/* Pushes a closed socket object: the userdata exists before any descriptor is made. */
shmh_sock_ud *shmh_sock_newud(lua_State *L);

/* Makes the object `u` live around fd (non-blocking, watched by a poll handle, idle). Returns
 * 0, or a negative errno after closing fd. */
int shmh_sock_attach(lua_State *L, shmh_sock_ud *u, int fd, int type, int listening,
                     const char *name);

/* Registers the socket and raw descriptor types. */
void shmh_sock_register(lua_State *L);
void shmh_rawfd_register(lua_State *L);

/* Pushes the object for a descriptor received from a peer, typed from the descriptor itself:
 * an eventfd, a segment (memfd or /dev/shm file), a socket, or a raw descriptor object. Always
 * pushes one value and owns fd from then on (false when not even a raw object could be made). */
void shmh_rawfd_adopt(lua_State *L, int fd);

#endif
