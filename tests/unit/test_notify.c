/* The eventfd core: counting, semaphore mode, overflow, and a wake-up across a fork. */
#include "check.h"
#include "notify.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <sys/eventfd.h>

static void t_count(void) {
  int fd = shmh_eventfd_open(0, 0);
  CHECK(fd >= 0);
  uint64_t v = 99;
  CHECK_EQ(shmh_eventfd_try(fd, &v), -EAGAIN);
  CHECK_EQ(shmh_eventfd_notify(fd, 1), 0);
  CHECK_EQ(shmh_eventfd_notify(fd, 5), 0);
  CHECK_EQ(shmh_eventfd_try(fd, &v), 0);
  CHECK_EQ(v, 6);
  /* A read resets the counter. */
  CHECK_EQ(shmh_eventfd_try(fd, &v), -EAGAIN);
  CHECK_EQ(shmh_eventfd_notify(fd, 0), -EINVAL);
  int fl = fcntl(fd, F_GETFL), fdfl = fcntl(fd, F_GETFD);
  CHECK(fl & O_NONBLOCK);
  CHECK(fdfl & FD_CLOEXEC);
  close(fd);
}

static void t_init_and_semaphore(void) {
  int fd = shmh_eventfd_open(3, 1);
  CHECK(fd >= 0);
  uint64_t v = 0;
  for (int i = 0; i < 3; i++) {
    CHECK_EQ(shmh_eventfd_try(fd, &v), 0);
    CHECK_EQ(v, 1);
  }
  CHECK_EQ(shmh_eventfd_try(fd, &v), -EAGAIN);
  close(fd);
}

static void t_overflow(void) {
  int fd = shmh_eventfd_open(0, 0);
  CHECK(fd >= 0);
  CHECK_EQ(shmh_eventfd_notify(fd, SHMH_EVENTFD_MAX), 0);
  /* Full: one more would block, and non-blocking that is EAGAIN. */
  CHECK_EQ(shmh_eventfd_notify(fd, 1), -EAGAIN);
  CHECK_EQ(shmh_eventfd_notify(fd, SHMH_EVENTFD_MAX + 1), -EINVAL);
  uint64_t v = 0;
  CHECK_EQ(shmh_eventfd_try(fd, &v), 0);
  CHECK(v == SHMH_EVENTFD_MAX);
  close(fd);
}

static void t_is_eventfd(void) {
  int fd = shmh_eventfd_open(0, 0), p[2];
  CHECK(fd >= 0);
  CHECK(pipe(p) == 0);
  CHECK_EQ(shmh_fd_is_eventfd(fd), 1);
  CHECK_EQ(shmh_fd_is_eventfd(p[0]), 0);
  close(p[0]);
  CHECK_EQ(shmh_fd_is_eventfd(p[0]), -ENOENT);
  close(p[1]);
  close(fd);
}

static void t_across_fork(void) {
  int fd = shmh_eventfd_open(0, 0);
  CHECK(fd >= 0);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    for (int i = 0; i < 4; i++) shmh_eventfd_notify(fd, 10);
    _exit(0);
  }
  int st;
  CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
  struct pollfd p = {.fd = fd, .events = POLLIN};
  CHECK_EQ(poll(&p, 1, 5000), 1);
  uint64_t v = 0;
  CHECK_EQ(shmh_eventfd_try(fd, &v), 0);
  CHECK_EQ(v, 40);
  close(fd);
}

int main(void) { return RUN(t_count, t_init_and_semaphore, t_overflow, t_is_eventfd, t_across_fork); }
