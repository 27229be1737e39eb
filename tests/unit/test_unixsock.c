/* The AF_UNIX core: addresses, stale and foreign paths, SCM_RIGHTS, MSG_CTRUNC, credentials,
 * partial stream sends and dead peers. */
#include "check.h"
#include "notify.h"
#include "unixsock.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>

static char path_buf[108];

/* A socket path unique to this process and case, removed by the case. */
static const char *tmp_path(const char *tag) {
  snprintf(path_buf, sizeof path_buf, "/tmp/shmh-unit-%d-%s.sock", (int)getpid(), tag);
  unlink(path_buf);
  return path_buf;
}

static int count_open_fds(void) {
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  CHECK(d != NULL);
  for (struct dirent *e; (e = readdir(d)) != NULL;)
    if (e->d_name[0] != '.') n++;
  closedir(d);
  return n;
}

/* A connected pair made the way scripts make them: listen, connect, accept. */
static void pair(const struct shmh_unix_addr *a, int type, int *lfd, int *cfd, int *sfd) {
  int replaced = -1;
  *lfd = shmh_unix_listen(a, type, 0600, 8, &replaced);
  CHECK(*lfd >= 0);
  CHECK_EQ(replaced, 0);
  *cfd = shmh_unix_connect(a, type);
  CHECK(*cfd >= 0);
  *sfd = shmh_unix_accept(*lfd);
  CHECK(*sfd >= 0);
}

static void t_addresses(void) {
  struct shmh_unix_addr a;
  char longp[200];
  memset(longp, 'x', sizeof longp - 1);
  longp[0] = '/';
  longp[sizeof longp - 1] = '\0';
  CHECK_EQ(shmh_unix_addr_path(&a, ""), -EINVAL);
  CHECK_EQ(shmh_unix_addr_path(&a, longp), -ENAMETOOLONG);
  CHECK_EQ(shmh_unix_addr_abstract(&a, "", 0), -EINVAL);
  CHECK_EQ(shmh_unix_addr_abstract(&a, longp, 108), -ENAMETOOLONG);
  CHECK_EQ(shmh_unix_addr_abstract(&a, longp, 107), 0);
  CHECK_EQ(shmh_unix_addr_abstract(&a, "ab\0c", 4), 0);
  CHECK_EQ(a.len, offsetof(struct sockaddr_un, sun_path) + 5);
  char buf[32];
  shmh_unix_addr_format(&a, buf, sizeof buf);
  CHECK_STR(buf, "@ab?c");
}

static void t_abstract(void) {
  char name[64];
  int n = snprintf(name, sizeof name, "shmh-unit-%d", (int)getpid());
  /* A NUL inside the name is part of it: the length says where it ends. */
  name[n] = '\0';
  memcpy(name + n + 1, "z", 1);
  struct shmh_unix_addr a, prefix;
  CHECK_EQ(shmh_unix_addr_abstract(&a, name, (size_t)n + 2), 0);
  CHECK_EQ(shmh_unix_addr_abstract(&prefix, name, (size_t)n), 0);
  int l, c, s, replaced;
  pair(&a, SOCK_STREAM, &l, &c, &s);
  /* The shorter name is another name, and no one listens there. */
  CHECK_EQ(shmh_unix_connect(&prefix, SOCK_STREAM), -ECONNREFUSED);
  CHECK_EQ(shmh_unix_listen(&a, SOCK_STREAM, 0600, 8, &replaced), -EADDRINUSE);
  /* Abstract names are looked up per socket type: the other type finds no one. */
  CHECK_EQ(shmh_unix_connect(&a, SOCK_SEQPACKET), -ECONNREFUSED);
  close(c);
  close(s);
  close(l);
  /* Abstract names vanish with their socket: the name is free again at once. */
  l = shmh_unix_listen(&a, SOCK_SEQPACKET, 0600, 8, &replaced);
  CHECK(l >= 0);
  close(l);
}

static void t_mode_and_stale(void) {
  struct shmh_unix_addr a;
  CHECK_EQ(shmh_unix_addr_path(&a, tmp_path("stale")), 0);
  int replaced = -1;
  int l = shmh_unix_listen(&a, SOCK_STREAM, 0640, 8, &replaced);
  CHECK(l >= 0);
  CHECK_EQ(replaced, 0);
  struct stat st;
  CHECK(lstat(a.sun.sun_path, &st) == 0);
  CHECK(S_ISSOCK(st.st_mode));
  CHECK_EQ(st.st_mode & 07777, 0640);
  /* Live: refused, and the path stays. */
  CHECK_EQ(shmh_unix_listen(&a, SOCK_STREAM, 0600, 8, &replaced), -EADDRINUSE);
  CHECK_EQ(shmh_unix_listen(&a, SOCK_SEQPACKET, 0600, 8, &replaced), -EADDRINUSE);
  CHECK_EQ(replaced, 0);
  /* A path is one file for both types: the other type meets a protocol error. */
  CHECK_EQ(shmh_unix_connect(&a, SOCK_SEQPACKET), -EPROTOTYPE);
  int c = shmh_unix_connect(&a, SOCK_STREAM);
  CHECK(c >= 0);
  close(c);
  /* Closed without removing the path, as a killed process leaves it: stale. */
  close(l);
  CHECK(lstat(a.sun.sun_path, &st) == 0);
  CHECK_EQ(shmh_unix_connect(&a, SOCK_STREAM), -ECONNREFUSED);
  l = shmh_unix_listen(&a, SOCK_STREAM, 0600, 8, &replaced);
  CHECK(l >= 0);
  CHECK_EQ(replaced, 1);
  c = shmh_unix_connect(&a, SOCK_STREAM);
  CHECK(c >= 0);
  close(c);
  close(l);
  CHECK(unlink(a.sun.sun_path) == 0);
  CHECK_EQ(shmh_unix_connect(&a, SOCK_STREAM), -ENOENT);
}

static void t_not_a_socket_untouched(void) {
  struct shmh_unix_addr a;
  const char *p = tmp_path("file");
  CHECK_EQ(shmh_unix_addr_path(&a, p), 0);
  int f = open(p, O_WRONLY | O_CREAT | O_EXCL, 0644);
  CHECK(f >= 0);
  CHECK(write(f, "precious", 8) == 8);
  close(f);
  int replaced = -1;
  CHECK_EQ(shmh_unix_listen(&a, SOCK_STREAM, 0600, 8, &replaced), -EEXIST);
  CHECK_EQ(replaced, 0);
  char buf[16] = {0};
  f = open(p, O_RDONLY);
  CHECK(f >= 0);
  CHECK_EQ(read(f, buf, sizeof buf), 8);
  close(f);
  CHECK_STR(buf, "precious");
  struct stat st;
  CHECK(stat(p, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0777) == 0644);
  unlink(p);
}

static void t_peercred(void) {
  struct shmh_unix_addr a;
  CHECK_EQ(shmh_unix_addr_path(&a, tmp_path("cred")), 0);
  int replaced;
  int l = shmh_unix_listen(&a, SOCK_SEQPACKET, 0600, 8, &replaced);
  CHECK(l >= 0);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    int c = shmh_unix_connect(&a, SOCK_SEQPACKET);
    if (c < 0) _exit(2);
    char b;
    /* Hold the connection until the parent has looked. */
    while (shmh_unix_recv(c, &b, 1, NULL, 0, &(int){0}) == -EAGAIN) usleep(1000);
    _exit(0);
  }
  int s = -EAGAIN;
  for (int i = 0; i < 5000 && s == -EAGAIN; i++) {
    s = shmh_unix_accept(l);
    if (s == -EAGAIN) usleep(1000);
  }
  CHECK(s >= 0);
  struct shmh_unix_cred cred;
  CHECK_EQ(shmh_unix_peercred(s, &cred), 0);
  CHECK_EQ(cred.pid, pid);
  CHECK_EQ(cred.uid, geteuid());
  CHECK_EQ(cred.gid, getegid());
  int type, listening;
  CHECK_EQ(shmh_unix_socktype(s, &type, &listening), 0);
  CHECK_EQ(type, SOCK_SEQPACKET);
  CHECK_EQ(listening, 0);
  CHECK_EQ(shmh_unix_socktype(l, &type, &listening), 0);
  CHECK_EQ(listening, 1);
  CHECK_EQ(shmh_unix_send(s, "x", 1, NULL, 0), 1);
  int st;
  CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
  close(s);
  close(l);
  unlink(a.sun.sun_path);
}

/* Several descriptors of different kinds in one message, from another process. */
static void t_rights_across_fork(void) {
  struct shmh_unix_addr a;
  CHECK_EQ(shmh_unix_addr_path(&a, tmp_path("rights")), 0);
  int replaced;
  int l = shmh_unix_listen(&a, SOCK_STREAM, 0600, 8, &replaced);
  CHECK(l >= 0);
  char shmname[64];
  snprintf(shmname, sizeof shmname, "/shmh-unit-%d", (int)getpid());
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    int c = shmh_unix_connect(&a, SOCK_STREAM);
    int ev = shmh_eventfd_open(0, 0);
    int mfd = memfd_create("unitseg", MFD_CLOEXEC);
    int sfd = shm_open(shmname, O_RDWR | O_CREAT | O_EXCL, 0600);
    int p[2];
    if (c < 0 || ev < 0 || mfd < 0 || sfd < 0 || pipe(p) < 0) _exit(2);
    shm_unlink(shmname);
    if (ftruncate(mfd, 4096) < 0 || pwrite(mfd, "in the memfd", 12, 0) != 12) _exit(3);
    if (shmh_eventfd_notify(ev, 7) < 0) _exit(4);
    int fds[5] = {ev, mfd, sfd, c, p[0]};
    if (shmh_unix_send(c, "hello", 5, fds, 5) != 5) _exit(5);
    _exit(0);
  }
  int s = -EAGAIN;
  for (int i = 0; i < 5000 && s == -EAGAIN; i++) {
    s = shmh_unix_accept(l);
    if (s == -EAGAIN) usleep(1000);
  }
  CHECK(s >= 0);
  int st;
  CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
  char buf[64];
  int fds[8], nfds = -1;
  ssize_t n = shmh_unix_recv(s, buf, sizeof buf, fds, 8, &nfds);
  CHECK_EQ(n, 5);
  CHECK(memcmp(buf, "hello", 5) == 0);
  CHECK_EQ(nfds, 5);
  CHECK_EQ(shmh_fd_kind(fds[0]), SHMH_FD_EVENTFD);
  CHECK_EQ(shmh_fd_kind(fds[1]), SHMH_FD_MEMFD);
  CHECK_EQ(shmh_fd_kind(fds[2]), SHMH_FD_SHM);
  CHECK_EQ(shmh_fd_kind(fds[3]), SHMH_FD_SOCKET);
  CHECK_EQ(shmh_fd_kind(fds[4]), SHMH_FD_OTHER);
  for (int i = 0; i < 5; i++) CHECK(fcntl(fds[i], F_GETFD) & FD_CLOEXEC);
  uint64_t v = 0;
  CHECK_EQ(shmh_eventfd_try(fds[0], &v), 0);
  CHECK_EQ(v, 7);
  char *m = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fds[1], 0);
  CHECK(m != MAP_FAILED);
  CHECK(memcmp(m, "in the memfd", 12) == 0);
  munmap(m, 4096);
  for (int i = 0; i < 5; i++) close(fds[i]);
  /* The child is gone and its end is closed: end of file. */
  CHECK_EQ(shmh_unix_recv(s, buf, sizeof buf, fds, 8, &nfds), 0);
  CHECK_EQ(shmh_unix_peer_gone(s), 1);
  close(s);
  close(l);
  unlink(a.sun.sun_path);
}

static void t_ctrunc_closes_all(void) {
  struct shmh_unix_addr a;
  CHECK_EQ(shmh_unix_addr_path(&a, tmp_path("trunc")), 0);
  int l, c, s;
  pair(&a, SOCK_SEQPACKET, &l, &c, &s);
  int base = count_open_fds();
  int e1 = shmh_eventfd_open(0, 0), e2 = shmh_eventfd_open(0, 0), e3 = shmh_eventfd_open(0, 0);
  int fds[3] = {e1, e2, e3};
  CHECK_EQ(shmh_unix_send(c, "abc", 3, fds, 3), 3);
  close(e1);
  close(e2);
  close(e3);
  CHECK_EQ(count_open_fds(), base);
  char buf[8];
  int got[1], nfds = -1;
  /* Room for one descriptor where three were sent: the kernel sets MSG_CTRUNC. */
  CHECK_EQ(shmh_unix_recv(s, buf, sizeof buf, got, 1, &nfds), -EMSGSIZE);
  CHECK_EQ(nfds, 0);
  CHECK_EQ(count_open_fds(), base);
  CHECK_EQ(shmh_unix_pending(s), 0);
  /* With no room at all, descriptors sent are likewise reported and none leak. */
  int e4 = shmh_eventfd_open(0, 0);
  CHECK_EQ(shmh_unix_send(c, "d", 1, &e4, 1), 1);
  close(e4);
  CHECK_EQ(shmh_unix_recv(s, buf, sizeof buf, got, 0, &nfds), -EMSGSIZE);
  CHECK_EQ(count_open_fds(), base);
  /* The connection goes on working. */
  CHECK_EQ(shmh_unix_send(c, "ok", 2, NULL, 0), 2);
  CHECK_EQ(shmh_unix_send(c, "later", 5, NULL, 0), 5);
  /* FIONREAD on an AF_UNIX seqpacket socket counts every queued message, not the next one. */
  CHECK_EQ(shmh_unix_pending(s), 7);
  CHECK_EQ(shmh_unix_recv(s, buf, sizeof buf, got, 1, &nfds), 2);
  CHECK_EQ(nfds, 0);
  CHECK_EQ(shmh_unix_recv(s, buf, sizeof buf, got, 1, &nfds), 5);
  close(c);
  close(s);
  close(l);
  unlink(a.sun.sun_path);
}

static void t_send_rules(void) {
  struct shmh_unix_addr a;
  CHECK_EQ(shmh_unix_addr_path(&a, tmp_path("rules")), 0);
  int l, c, s;
  pair(&a, SOCK_STREAM, &l, &c, &s);
  int e = shmh_eventfd_open(0, 0);
  CHECK_EQ(shmh_unix_send(c, "", 0, &e, 1), -EINVAL);
  int many[SHMH_UNIX_MAX_FDS + 1];
  CHECK_EQ(shmh_unix_send(c, "x", 1, many, SHMH_UNIX_MAX_FDS + 1), -EINVAL);
  char buf[8];
  int nfds;
  CHECK_EQ(shmh_unix_recv(s, buf, sizeof buf, NULL, 0, &nfds), -EAGAIN);
  CHECK_EQ(shmh_unix_peer_gone(s), 0);
  /* A dead peer is EPIPE, not SIGPIPE: this process would die of the signal otherwise. */
  close(s);
  ssize_t r = shmh_unix_send(c, "x", 1, NULL, 0);
  CHECK(r == -EPIPE || r == -ECONNRESET);
  close(e);
  close(c);
  close(l);
  unlink(a.sun.sun_path);
}

/* A stream send bigger than the socket buffer goes partly; the descriptors travel with the
 * first part, and the rest follows without them. */
static void t_partial_stream_send(void) {
  struct shmh_unix_addr a;
  CHECK_EQ(shmh_unix_addr_path(&a, tmp_path("partial")), 0);
  int l, c, s;
  pair(&a, SOCK_STREAM, &l, &c, &s);
  size_t len = 4 << 20;
  char *big = malloc(len), *in = malloc(len);
  CHECK(big && in);
  for (size_t i = 0; i < len; i++) big[i] = (char)(i * 7 + 3);
  int e = shmh_eventfd_open(0, 0);
  ssize_t first = shmh_unix_send(c, big, len, &e, 1);
  CHECK(first > 0 && (size_t)first < len);
  close(e);
  size_t sent = (size_t)first, got = 0;
  int fdsum = 0;
  while (got < len) {
    if (sent < len) {
      ssize_t k = shmh_unix_send(c, big + sent, len - sent, NULL, 0);
      CHECK(k > 0 || k == -EAGAIN);
      if (k > 0) sent += (size_t)k;
    }
    int fds[4], nfds = 0;
    ssize_t k = shmh_unix_recv(s, in + got, len - got, fds, 4, &nfds);
    CHECK(k > 0 || k == -EAGAIN);
    if (k > 0) {
      if (nfds) {
        CHECK_EQ(got, 0);
        CHECK_EQ(shmh_fd_kind(fds[0]), SHMH_FD_EVENTFD);
        for (int i = 0; i < nfds; i++) close(fds[i]);
      }
      fdsum += nfds;
      got += (size_t)k;
    }
  }
  CHECK_EQ(fdsum, 1);
  CHECK(memcmp(big, in, len) == 0);
  free(big);
  free(in);
  close(c);
  close(s);
  close(l);
  unlink(a.sun.sun_path);
}

int main(void) {
  return RUN(t_addresses, t_abstract, t_mode_and_stale, t_not_a_socket_untouched, t_peercred,
             t_rights_across_fork, t_ctrunc_closes_all, t_send_rules, t_partial_stream_send);
}
