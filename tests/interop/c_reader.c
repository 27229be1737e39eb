/*
 * The Day56 lab's reader in C, written the classic way: connect to the writer's AF_UNIX
 * control socket, receive an eventfd with recvmsg(SCM_RIGHTS), shm_open and mmap the segment
 * by name, then epoll_wait on the eventfd and on the connection. It prints the same lines as
 * scripts/reader.lua, so the interop tests can pair either reader with either writer.
 *
 *   c_reader [--name /SEG] [--socket PATH | --abstract NAME] [--seqpacket] [--wait S]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* accept4, SO_PEERCRED's struct ucred, signalfd */
#endif
#include "day56_common.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* How long the writer's first message may take after connect. */
#define HELLO_WAIT_MS 5000

static struct day56_opts opt;
static char sockname[128];

static void die(const char *what, const char *obj) {
  fprintf(stderr, "c_reader: %s %s: %s\n", what, obj ? obj : "", strerror(errno));
  exit(1);
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Connects, retrying while the writer is not there yet (no path: ENOENT; a path nobody
 * listens on: ECONNREFUSED; a full backlog: EAGAIN) until --wait seconds have passed. */
static int connect_writer(void) {
  struct sockaddr_un a;
  socklen_t alen = day56_addr(&opt, &a);
  if (alen == 0) {
    fprintf(stderr, "c_reader: socket name '%s' is empty or longer than 107 bytes\n", sockname);
    exit(2);
  }
  double deadline = now() + opt.wait;
  for (;;) {
    int s = socket(AF_UNIX, opt.type | SOCK_CLOEXEC, 0);
    if (s < 0) die("socket", NULL);
    if (connect(s, (struct sockaddr *)&a, alen) == 0) return s;
    int err = errno;
    close(s);
    if (err == EPROTOTYPE) {
      fprintf(stderr, "c_reader: the writer at %s uses the other socket type (connect: %s); "
              "give --seqpacket to both or neither\n", sockname, strerror(err));
      exit(1);
    }
    if ((err != ENOENT && err != ECONNREFUSED && err != EAGAIN) || now() >= deadline) {
      fprintf(stderr, "c_reader: no writer at %s after %g s: connect: %s\n", sockname, opt.wait,
              strerror(err));
      exit(1);
    }
    usleep(20000);
  }
}

/* Receives the hello line and the eventfd. MSG_CMSG_CLOEXEC keeps the descriptor from
 * leaking into children; MSG_CTRUNC means descriptors were lost (control buffer too small or
 * our descriptor limit reached), which must not pass silently. */
static int receive_eventfd(int s) {
  char data[512];
  union {
    char buf[CMSG_SPACE(4 * sizeof(int))];
    struct cmsghdr align;
  } ctrl;
  struct iovec iov = {data, sizeof data - 1};
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctrl.buf,
                     .msg_controllen = sizeof ctrl.buf};
  /* A writer sends this as soon as it accepts; something else listening there may never
   * send anything, so it has a deadline. */
  struct pollfd p = {.fd = s, .events = POLLIN};
  int ready;
  while ((ready = poll(&p, 1, HELLO_WAIT_MS)) < 0 && errno == EINTR) {}
  if (ready == 0) {
    fprintf(stderr, "c_reader: nothing from %s within %d s of connecting (is a Day56 writer "
            "listening there?)\n", sockname, HELLO_WAIT_MS / 1000);
    exit(1);
  }
  ssize_t n = recvmsg(s, &m, MSG_CMSG_CLOEXEC);
  if (n < 0) die("recvmsg", sockname);
  if (n == 0) {
    fprintf(stderr, "c_reader: the writer closed the connection before sending an eventfd\n");
    exit(1);
  }
  int efd = -1;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; i++) {
      int fd;
      memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      if (efd < 0) efd = fd;
      else close(fd); /* the protocol sends one; more are closed, not leaked */
    }
  }
  if (m.msg_flags & MSG_CTRUNC) {
    fprintf(stderr, "c_reader: descriptors from the writer were truncated (MSG_CTRUNC)\n");
    exit(1);
  }
  if (efd < 0) {
    fprintf(stderr, "c_reader: the writer's first message carried no descriptor\n");
    exit(1);
  }
  /* The hello names the writer's segment; a reader told another name would watch the wrong
   * data, so that is an error. A peer that sends other bytes (the lab's writer) is fine. */
  data[n] = '\0';
  size_t hl = strlen(DAY56_HELLO);
  if (strncmp(data, DAY56_HELLO, hl) == 0) {
    char *nl = strchr(data, '\n');
    if (nl) *nl = '\0';
    if (strcmp(data + hl, opt.name) != 0) {
      fprintf(stderr, "c_reader: the writer serves segment %s, not %s (use --name %s)\n",
              data + hl, opt.name, data + hl);
      exit(1);
    }
  }
  return efd;
}

struct snapshot {
  bool activation;
  int counter;
  char message[SHM_MSG_SIZE];
};

/* Copies the data under the lock. The mapping is read-write even though this process only
 * reads: locking a pthread mutex writes to it. A writer killed while holding the lock shows
 * as EOWNERDEAD (robust mutex), and a lock that never comes (a non-robust one held by a dead
 * process) is given up after 5 s instead of hanging. */
static void snapshot(int shm_fd, struct shm_data *shm, struct snapshot *s) {
  struct stat st;
  /* A segment shrunk under us would fault (SIGBUS) on the next access. */
  if (fstat(shm_fd, &st) < 0 || (size_t)st.st_size < sizeof *shm) {
    fprintf(stderr, "c_reader: segment %s was truncated under us\n", opt.name);
    exit(1);
  }
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 5;
  int rc = pthread_mutex_timedlock(&shm->lock, &until);
  if (rc == EOWNERDEAD) {
    fprintf(stderr, "c_reader: warning: the holder of the lock died; reading anyway\n");
    pthread_mutex_consistent(&shm->lock);
  } else if (rc != 0) {
    errno = rc;
    die("pthread_mutex_timedlock", opt.name);
  }
  s->activation = shm->activation;
  s->counter = shm->counter;
  memcpy(s->message, shm->message, SHM_MSG_SIZE);
  pthread_mutex_unlock(&shm->lock);
  s->message[SHM_MSG_SIZE - 1] = '\0'; /* a peer's garbage is still printed safely */
}

/* One wake-up: print the data, or end when the writer has shut down. */
static void wake(int shm_fd, struct shm_data *shm) {
  struct snapshot s;
  snapshot(shm_fd, shm, &s);
  if (!s.activation) {
    printf("[INFO] writer shut down\n");
    exit(0);
  }
  printf("[INFO] shm_data:\ncounter=%d\nmessage=%s\n", s.counter, s.message);
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  day56_parse(argc, argv, "c_reader", 1, &opt);
  day56_sockname(&opt, sockname, sizeof sockname);
  signal(SIGPIPE, SIG_IGN);

  int s = connect_writer();
  printf("[INFO] connected to writer\n");
  int efd = receive_eventfd(s);
  printf("[INFO] received eventfd\n");

  int shm_fd = shm_open(opt.name, O_RDWR | O_CLOEXEC, 0);
  if (shm_fd < 0) die("shm_open", opt.name);
  struct stat st;
  if (fstat(shm_fd, &st) < 0) die("fstat", opt.name);
  if ((size_t)st.st_size < sizeof(struct shm_data)) {
    fprintf(stderr, "c_reader: segment %s has %lld bytes, less than struct shm_data (%zu)\n",
            opt.name, (long long)st.st_size, sizeof(struct shm_data));
    return 1;
  }
  struct shm_data *shm =
      mmap(NULL, sizeof *shm, PROT_READ | PROT_WRITE, MAP_SHARED, shm_fd, 0);
  if (shm == MAP_FAILED) die("mmap", opt.name);

  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1", NULL);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = efd};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev) < 0) die("epoll_ctl", "eventfd");
  ev.events = EPOLLIN | EPOLLRDHUP;
  ev.data.fd = s;
  if (epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev) < 0) die("epoll_ctl", "socket");
  printf("[INFO] epoll wait start\n");

  for (;;) {
    struct epoll_event evs[2];
    int n = epoll_wait(ep, evs, 2, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) die("epoll_wait", NULL);
    int woken = 0, closed = 0;
    for (int i = 0; i < n; i++) {
      if (evs[i].data.fd == efd) woken = 1;
      else closed = 1;
    }
    if (woken) {
      /* The eventfd is shared with the writer and may have been made non-blocking by a
       * shmhost peer; a counter read by nobody else is still there, so EAGAIN only means
       * another wake-up already consumed it. */
      uint64_t count;
      if (read(efd, &count, sizeof count) == sizeof count) wake(shm_fd, shm);
    }
    if (closed) {
      char junk[256];
      ssize_t r = recv(s, junk, sizeof junk, MSG_DONTWAIT);
      if (r > 0 || (r < 0 && errno == EAGAIN)) continue; /* extra bytes: ignored */
      /* The writer's end of the connection closed. A writer that shut down set activation
       * to false and notified before closing; one that died did neither. */
      struct pollfd p = {.fd = efd, .events = POLLIN};
      uint64_t count;
      if (poll(&p, 1, 0) == 1 && read(efd, &count, sizeof count) == sizeof count)
        wake(shm_fd, shm);
      struct snapshot snap;
      snapshot(shm_fd, shm, &snap);
      if (!snap.activation) {
        printf("[INFO] writer shut down\n");
        return 0;
      }
      fprintf(stderr, "c_reader: the writer died (control connection closed without a shutdown)\n");
      return 1;
    }
  }
}
