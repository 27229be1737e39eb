#include "notify.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

int shmh_eventfd_open(unsigned int init, int semaphore) {
  int flags = EFD_NONBLOCK | EFD_CLOEXEC | (semaphore ? EFD_SEMAPHORE : 0);
  int fd = eventfd(init, flags);
  return fd < 0 ? -errno : fd;
}

int shmh_eventfd_notify(int fd, uint64_t n) {
  if (n == 0 || n > SHMH_EVENTFD_MAX) return -EINVAL;
  for (;;) {
    ssize_t w = write(fd, &n, sizeof n);
    if (w == (ssize_t)sizeof n) return 0;
    if (w < 0 && errno == EINTR) continue;
    /* An eventfd write is all or nothing: 8 bytes or an error. */
    return w < 0 ? -errno : -EIO;
  }
}

int shmh_eventfd_try(int fd, uint64_t *count) {
  for (;;) {
    uint64_t v;
    ssize_t r = read(fd, &v, sizeof v);
    if (r == (ssize_t)sizeof v) {
      *count = v;
      return 0;
    }
    if (r < 0 && errno == EINTR) continue;
    return r < 0 ? -errno : -EIO;
  }
}

int shmh_fd_is_eventfd(int fd) {
  /* An eventfd has no file of its own: it lives on the anonymous inode, and its link in
   * /proc names the kind, "anon_inode:[eventfd]". */
  char link[64], target[64];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, target, sizeof target - 1);
  if (n < 0) return -errno;
  target[n] = '\0';
  return strcmp(target, "anon_inode:[eventfd]") == 0;
}
