#include "unixsock.h"
#include "notify.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

int shmh_unix_addr_path(struct shmh_unix_addr *a, const char *path) {
  size_t n = strlen(path);
  memset(a, 0, sizeof *a);
  if (n == 0) return -EINVAL;
  if (n >= sizeof a->sun.sun_path) return -ENAMETOOLONG;
  a->sun.sun_family = AF_UNIX;
  memcpy(a->sun.sun_path, path, n + 1);
  a->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
  return 0;
}

int shmh_unix_addr_abstract(struct shmh_unix_addr *a, const char *name, size_t len) {
  memset(a, 0, sizeof *a);
  /* An empty abstract name would ask the kernel to pick one (autobind): not an address a
   * peer could find. */
  if (len == 0) return -EINVAL;
  if (len > sizeof a->sun.sun_path - 1) return -ENAMETOOLONG;
  a->sun.sun_family = AF_UNIX;
  a->sun.sun_path[0] = '\0';
  memcpy(a->sun.sun_path + 1, name, len);
  /* The kernel takes every byte up to the length as the name, trailing NULs included, so
   * the length must be exactly the name's or a peer would look for another name. */
  a->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len);
  a->abstract = 1;
  return 0;
}

void shmh_unix_addr_format(const struct shmh_unix_addr *a, char *buf, size_t n) {
  if (n == 0) return;
  if (!a->abstract) {
    snprintf(buf, n, "%s", a->sun.sun_path);
    return;
  }
  size_t len = a->len - offsetof(struct sockaddr_un, sun_path) - 1, j = 0;
  buf[j++] = '@';
  for (size_t i = 0; i < len && j + 1 < n; i++) {
    unsigned char c = (unsigned char)a->sun.sun_path[1 + i];
    buf[j++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
  }
  buf[j < n ? j : n - 1] = '\0';
}

static int bind_and_listen(int fd, const struct shmh_unix_addr *a, mode_t mode, int backlog) {
  if (bind(fd, (const struct sockaddr *)&a->sun, a->len) < 0) return -errno;
  /* connect() on a path needs write permission on the socket file, and bind() made it with
   * the umask's mode. Changing it before listen() leaves no moment in which a peer allowed
   * by the wider mode could connect: until listen() every connect is refused. */
  if (!a->abstract && chmod(a->sun.sun_path, mode) < 0) {
    int err = -errno;
    unlink(a->sun.sun_path);
    return err;
  }
  if (listen(fd, backlog) < 0) {
    int err = -errno;
    if (!a->abstract) unlink(a->sun.sun_path);
    return err;
  }
  return 0;
}

/* A path that bind() found taken: is it a socket that no one listens on any more? */
static int stale_socket(const struct shmh_unix_addr *a, int type, struct stat *st) {
  if (lstat(a->sun.sun_path, st) < 0) return -errno;
  if (!S_ISSOCK(st->st_mode)) return -EEXIST;
  int probe = shmh_unix_connect(a, type);
  if (probe >= 0) {
    close(probe);
    return -EADDRINUSE;
  }
  /* Only a refused connection proves there is no listener. A full backlog (EAGAIN), a
   * listener of the other type (EPROTOTYPE) or a permission error mean someone may be there. */
  return probe == -ECONNREFUSED ? 1 : -EADDRINUSE;
}

int shmh_unix_listen(const struct shmh_unix_addr *a, int type, mode_t mode, int backlog,
                     int *replaced) {
  *replaced = 0;
  int fd = socket(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int rc = bind_and_listen(fd, a, mode, backlog);
  if (rc == -EADDRINUSE && !a->abstract) {
    struct stat st, now;
    rc = stale_socket(a, type, &st);
    if (rc == 1) {
      /* Remove the stale socket only if the path still names the file we probed: a new
       * listener may have replaced it in between. */
      if (lstat(a->sun.sun_path, &now) == 0 && now.st_ino == st.st_ino &&
          now.st_dev == st.st_dev && unlink(a->sun.sun_path) == 0) {
        rc = bind_and_listen(fd, a, mode, backlog);
        if (rc == 0) *replaced = 1;
      } else {
        rc = -EADDRINUSE;
      }
    }
  }
  if (rc < 0) {
    close(fd);
    return rc;
  }
  return fd;
}

int shmh_unix_connect(const struct shmh_unix_addr *a, int type) {
  int fd = socket(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  /* An AF_UNIX connect completes at once or fails at once: the peer's socket is created in
   * the call. Non-blocking, a full backlog is EAGAIN instead of a wait. */
  int rc;
  do rc = connect(fd, (const struct sockaddr *)&a->sun, a->len);
  while (rc < 0 && errno == EINTR);
  if (rc < 0) {
    int err = -errno;
    close(fd);
    return err;
  }
  return fd;
}

int shmh_unix_accept(int lfd) {
  for (;;) {
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) return fd;
    if (errno == EINTR) continue;
    /* A connection that went away while queued is not the listener's failure. */
    if (errno == ECONNABORTED || errno == EWOULDBLOCK) return -EAGAIN;
    return -errno;
  }
}

int shmh_unix_peercred(int fd, struct shmh_unix_cred *cred) {
  struct ucred uc;
  socklen_t len = sizeof uc;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0) return -errno;
  cred->pid = uc.pid;
  cred->uid = uc.uid;
  cred->gid = uc.gid;
  return 0;
}

int shmh_unix_socktype(int fd, int *type, int *listening) {
  int v;
  socklen_t len = sizeof v;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &len) < 0) return -errno;
  *type = v;
  len = sizeof v;
  if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) < 0) return -errno;
  *listening = v != 0;
  return 0;
}

/* Control buffer for the most descriptors one message may carry, aligned for cmsghdr. */
union ctrl_buf {
  char buf[CMSG_SPACE(sizeof(int) * SHMH_UNIX_MAX_FDS)];
  struct cmsghdr align;
};

ssize_t shmh_unix_send(int fd, const void *buf, size_t len, const int *fds, int nfds) {
  if (nfds < 0 || nfds > SHMH_UNIX_MAX_FDS) return -EINVAL;
  /* At least one byte of real data must travel with ancillary data on a stream socket: the
   * kernel attaches the descriptors to the bytes, and a zero-byte send carries nothing. */
  if (nfds > 0 && len == 0) return -EINVAL;
  struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
  union ctrl_buf ctrl;
  if (nfds > 0) {
    memset(&ctrl, 0, sizeof ctrl);
    msg.msg_control = ctrl.buf;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
  }
  for (;;) {
    ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) return n;
    if (errno == EINTR) continue;
    return errno == EWOULDBLOCK ? -EAGAIN : -errno;
  }
}

ssize_t shmh_unix_recv(int fd, void *buf, size_t len, int *fds, int maxfds, int *nfds) {
  *nfds = 0;
  if (maxfds < 0) maxfds = 0;
  if (maxfds > SHMH_UNIX_MAX_FDS) maxfds = SHMH_UNIX_MAX_FDS;
  struct iovec iov = {.iov_base = buf, .iov_len = len};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
  union ctrl_buf ctrl;
  if (maxfds > 0) {
    msg.msg_control = ctrl.buf;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)maxfds);
  }
  ssize_t n;
  /* MSG_CMSG_CLOEXEC sets close-on-exec as the descriptors are installed, so a child
   * started in between cannot inherit them. */
  do n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0) return errno == EWOULDBLOCK ? -EAGAIN : -errno;
  int got = 0;
  for (struct cmsghdr *c = msg.msg_controllen ? CMSG_FIRSTHDR(&msg) : NULL; c != NULL;
       c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    for (int i = 0; i < k; i++) {
      int rfd;
      memcpy(&rfd, CMSG_DATA(c) + (size_t)i * sizeof(int), sizeof rfd);
      if (got < maxfds) fds[got++] = rfd;
      else close(rfd);
    }
  }
  if (msg.msg_flags & MSG_CTRUNC) {
    /* The kernel dropped descriptors it could not deliver (buffer too small or RLIMIT_NOFILE
     * reached). A partial set is worse than none: the peer's meaning of the set is lost, so
     * close what came and report it. */
    for (int i = 0; i < got; i++) close(fds[i]);
    return -EMSGSIZE;
  }
  *nfds = got;
  return n;
}

int shmh_unix_pending(int fd) {
  int n = 0;
  if (ioctl(fd, FIONREAD, &n) < 0) return -errno;
  return n;
}

int shmh_unix_peer_gone(int fd) {
  struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
  if (poll(&p, 1, 0) <= 0) return 0;
  return (p.revents & (POLLRDHUP | POLLHUP)) != 0;
}

int shmh_fd_kind(int fd) {
  struct stat st;
  if (fstat(fd, &st) < 0) return -errno;
  if (S_ISSOCK(st.st_mode)) return SHMH_FD_SOCKET;
  if (!S_ISREG(st.st_mode)) return shmh_fd_is_eventfd(fd) == 1 ? SHMH_FD_EVENTFD : SHMH_FD_OTHER;
  /* A memfd is a regular file on an internal tmpfs mount; its link in /proc reads
   * "/memfd:NAME (deleted)". A POSIX shared memory object is a file in /dev/shm. */
  char link[64], target[256];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, target, sizeof target - 1);
  if (n < 0) return SHMH_FD_OTHER;
  target[n] = '\0';
  if (strncmp(target, "/memfd:", 7) == 0) return SHMH_FD_MEMFD;
  if (strncmp(target, "/dev/shm/", 9) == 0) return SHMH_FD_SHM;
  return SHMH_FD_OTHER;
}
