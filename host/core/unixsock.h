/*
 * AF_UNIX sockets for control channels: stream and seqpacket, filesystem paths and abstract
 * names, descriptors passed with SCM_RIGHTS, and the peer's credentials from SO_PEERCRED.
 * Every descriptor made or received here is close-on-exec; sockets are non-blocking, since
 * the loop watches them, and every send or receive is a single non-blocking call.
 */
#ifndef SHMHOST_UNIXSOCK_H
#define SHMHOST_UNIXSOCK_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

/* The kernel refuses more descriptors than this in one message (SCM_MAX_FD). */
#define SHMH_UNIX_MAX_FDS 253

struct shmh_unix_addr {
  struct sockaddr_un sun;
  socklen_t len;          /* exactly what bind/connect get: abstract names are not strings */
  int abstract;
};

struct shmh_unix_cred {
  pid_t pid;
  uid_t uid;
  gid_t gid;
};

/* A filesystem path (non-empty, shorter than sun_path). -EINVAL or -ENAMETOOLONG. */
int shmh_unix_addr_path(struct shmh_unix_addr *a, const char *path);

/* An abstract name: a leading NUL then `len` bytes, which may hold anything (NULs too). The
 * name is not NUL-terminated; its length travels in the address length. */
int shmh_unix_addr_abstract(struct shmh_unix_addr *a, const char *name, size_t len);

/* A printable form for messages: the path, or "@name" for an abstract name. */
void shmh_unix_addr_format(const struct shmh_unix_addr *a, char *buf, size_t n);

/* Binds and listens (type SOCK_STREAM or SOCK_SEQPACKET). A path is given `mode` before the
 * socket listens, so no one connects through a wider mode. When the path exists:
 *   - a socket with no listener behind it (connect is refused) is stale: it is removed and
 *     replaced, and *replaced is set to 1;
 *   - a socket with a live listener gives -EADDRINUSE;
 *   - anything that is not a socket gives -EEXIST and is never touched.
 * Returns the listening descriptor or a negative errno. */
int shmh_unix_listen(const struct shmh_unix_addr *a, int type, mode_t mode, int backlog,
                     int *replaced);

/* Connects without waiting. Returns the descriptor or a negative errno: -ENOENT (no such
 * path), -ECONNREFUSED (no listener), -EAGAIN (the listener's backlog is full), -EPROTOTYPE
 * (the listener is of the other type), -EACCES ... */
int shmh_unix_connect(const struct shmh_unix_addr *a, int type);

/* Accepts one pending connection: the descriptor, -EAGAIN when none is pending, or another
 * negative errno. */
int shmh_unix_accept(int lfd);

/* The credentials of the process at the other end, as they were when it connected. */
int shmh_unix_peercred(int fd, struct shmh_unix_cred *cred);

/* The socket's type (SOCK_STREAM, SOCK_SEQPACKET, ...) and whether it listens. */
int shmh_unix_socktype(int fd, int *type, int *listening);

/* Sends `len` bytes and, when nfds > 0, the descriptors fds[0..nfds) with them. Ancillary
 * data rides on real data, so nfds > 0 needs len > 0 (-EINVAL otherwise). Uses MSG_NOSIGNAL:
 * a dead peer is -EPIPE, never SIGPIPE. Returns the bytes sent, which on a stream socket may
 * be fewer than len; the descriptors went with those first bytes, so the rest must be sent
 * without them. -EAGAIN when nothing could be sent now. */
ssize_t shmh_unix_send(int fd, const void *buf, size_t len, const int *fds, int nfds);

/* Receives up to `len` bytes and up to `maxfds` descriptors (at most SHMH_UNIX_MAX_FDS),
 * stored in fds[] with their count in *nfds. Returns the byte count (0: the peer closed, or on
 * seqpacket an empty message, see shmh_unix_peer_gone), -EAGAIN when nothing is there, or
 * -EMSGSIZE when the kernel cut the ancillary data (MSG_CTRUNC: the buffer was too small or
 * the descriptor limit was hit); then the descriptors that did arrive are closed, *nfds is 0
 * and the message's data is lost. */
ssize_t shmh_unix_recv(int fd, void *buf, size_t len, int *fds, int maxfds, int *nfds);

/* Bytes waiting to be received (FIONREAD): on AF_UNIX stream and seqpacket sockets alike the
 * sum of everything queued, so never less than the next message. A negative errno on
 * failure. */
int shmh_unix_pending(int fd);

/* 1 when the peer has shut down its sending side (POLLRDHUP), 0 otherwise. */
int shmh_unix_peer_gone(int fd);

/* What a descriptor received from a peer is, told from the descriptor itself. */
enum shmh_fd_kind {
  SHMH_FD_OTHER = 0,
  SHMH_FD_EVENTFD,  /* anon_inode:[eventfd] */
  SHMH_FD_MEMFD,    /* a regular file whose link reads "/memfd:NAME (deleted)" */
  SHMH_FD_SHM,      /* a regular file under /dev/shm: a POSIX shared memory object */
  SHMH_FD_SOCKET    /* S_ISSOCK */
};

/* The kind of an open descriptor, or a negative errno when it is not open. */
int shmh_fd_kind(int fd);

#endif
