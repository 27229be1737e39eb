/*
 * The Day56 lab's writer in C, written the classic way: shm_open, ftruncate, mmap, a
 * process-shared mutex in the segment, one eventfd per reader handed over with SCM_RIGHTS on
 * an AF_UNIX control socket, and one epoll loop over stdin, the listening socket, every
 * reader's connection and the termination signals. It speaks the same commands (-w TEXT, -s,
 * -t) and prints the same [INFO] lines as scripts/writer.lua, so the interop tests can pair
 * either writer with either reader.
 *
 *   c_writer [--name /SEG] [--socket PATH | --abstract NAME] [--seqpacket]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* accept4, SO_PEERCRED's struct ucred, signalfd */
#endif
#include "day56_common.h"

#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_READERS 64
#define LINE_MAX_BYTES 8192

struct reader {
  int conn; /* the reader's control connection; its end means the reader is gone */
  int efd;  /* the reader's eventfd (the reader holds its own copy) */
};

static struct day56_opts opt;
static char sockname[128];
static struct shm_data *shm;
static int listen_fd = -1;
static struct reader readers[MAX_READERS];
static int nreaders;

static void die(const char *what, const char *obj) {
  fprintf(stderr, "c_writer: %s %s: %s\n", what, obj ? obj : "", strerror(errno));
  exit(1);
}

/* Connects to the control socket to learn whether a writer is alive behind it; returns its
 * pid (from SO_PEERCRED: the kernel records the listener's credentials at listen time), 0
 * when nobody listens. A listener of the other socket type answers EPROTOTYPE: it is alive
 * too, so the other type is tried to learn its pid. */
static pid_t live_writer(void) {
  struct sockaddr_un a;
  socklen_t alen = day56_addr(&opt, &a);
  int types[2] = {opt.type, opt.type == SOCK_STREAM ? SOCK_SEQPACKET : SOCK_STREAM};
  for (int i = 0; i < 2; i++) {
    int s = socket(AF_UNIX, types[i] | SOCK_CLOEXEC, 0);
    if (s < 0) die("socket", NULL);
    if (connect(s, (struct sockaddr *)&a, alen) == 0) {
      struct ucred cred;
      socklen_t len = sizeof cred;
      pid_t pid = getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 ? cred.pid : -1;
      close(s);
      return pid;
    }
    int err = errno;
    close(s);
    if (err != EPROTOTYPE) return 0;
  }
  return 0;
}

/* Creates the segment, replacing a stale one (no live writer: checked before) with a
 * warning, and initialises the struct. The mutex is process-shared and robust, so a reader
 * that finds its holder killed is told (EOWNERDEAD) instead of waiting for ever. */
static void setup_shm(void) {
  int fd = shm_open(opt.name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0 && errno == EEXIST) {
    fprintf(stderr, "warning: replacing stale segment %s (no live writer behind %s)\n",
            opt.name, sockname);
    if (shm_unlink(opt.name) < 0 && errno != ENOENT) die("shm_unlink", opt.name);
    fd = shm_open(opt.name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
  }
  if (fd < 0) die("shm_open", opt.name);
  printf("[INFO] shm_open success\n");
  if (ftruncate(fd, sizeof *shm) < 0) {
    shm_unlink(opt.name);
    die("ftruncate", opt.name);
  }
  shm = mmap(NULL, sizeof *shm, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (shm == MAP_FAILED) {
    shm_unlink(opt.name);
    die("mmap", opt.name);
  }
  close(fd); /* the mapping keeps the object */
  printf("[INFO] shared memory mapped\n");

  pthread_mutexattr_t at;
  pthread_mutexattr_init(&at);
  pthread_mutexattr_setpshared(&at, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&at, PTHREAD_MUTEX_ROBUST);
  pthread_mutexattr_settype(&at, PTHREAD_MUTEX_ERRORCHECK);
  int rc = pthread_mutex_init(&shm->lock, &at);
  pthread_mutexattr_destroy(&at);
  if (rc != 0) {
    errno = rc;
    shm_unlink(opt.name);
    die("pthread_mutex_init", opt.name);
  }
  shm->activation = true;
  shm->counter = 1;
  shm->message[0] = '\0';
}

/* A lock that survives a reader killed while holding it: EOWNERDEAD means we hold the lock
 * and must mark the state consistent before unlocking, or it becomes unusable for all. */
static void lock_shm(void) {
  int rc = pthread_mutex_lock(&shm->lock);
  if (rc == EOWNERDEAD) {
    fprintf(stderr, "warning: a holder of the lock died; the data may be half updated\n");
    pthread_mutex_consistent(&shm->lock);
  } else if (rc != 0) {
    errno = rc;
    die("pthread_mutex_lock", opt.name);
  }
}

static void setup_socket(void) {
  struct sockaddr_un a;
  socklen_t alen = day56_addr(&opt, &a);
  if (alen == 0) {
    fprintf(stderr, "c_writer: socket name '%s' is empty or longer than 107 bytes\n", sockname);
    shm_unlink(opt.name);
    exit(2);
  }
  listen_fd = socket(AF_UNIX, opt.type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (listen_fd < 0) die("socket", NULL);
  printf("[INFO] socket created\n");
  if (!opt.abstract) {
    struct stat st;
    if (lstat(opt.path, &st) == 0) {
      if (!S_ISSOCK(st.st_mode)) {
        fprintf(stderr, "c_writer: %s exists and is not a socket; left untouched\n", opt.path);
        shm_unlink(opt.name);
        exit(1);
      }
      fprintf(stderr, "warning: replacing stale socket %s (nobody listens)\n", opt.path);
      unlink(opt.path);
    }
  }
  if (bind(listen_fd, (struct sockaddr *)&a, alen) < 0 || listen(listen_fd, 16) < 0) {
    int err = errno;
    shm_unlink(opt.name);
    errno = err;
    die("bind/listen", sockname);
  }
  printf("[INFO] socket listen success\n");
}

static void drop_reader(int i) {
  close(readers[i].conn); /* closing removes it from the epoll set */
  close(readers[i].efd);
  readers[i] = readers[--nreaders];
}

/* Gives a new reader its own eventfd. At least one byte of real data must travel with
 * ancillary data, so the descriptor rides on the hello line. */
static void accept_reader(int ep) {
  int c = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
  if (c < 0) {
    if (errno != EAGAIN && errno != ECONNABORTED) perror("c_writer: accept4");
    return;
  }
  if (nreaders == MAX_READERS) {
    fprintf(stderr, "c_writer: %d readers already; refusing one more\n", MAX_READERS);
    close(c);
    return;
  }
  int efd = eventfd(0, EFD_CLOEXEC);
  if (efd < 0) {
    perror("c_writer: eventfd");
    close(c);
    return;
  }
  char hello[300];
  int n = snprintf(hello, sizeof hello, DAY56_HELLO "%s\n", opt.name);
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } ctrl;
  memset(&ctrl, 0, sizeof ctrl);
  struct iovec iov = {hello, (size_t)n};
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctrl.buf,
                     .msg_controllen = sizeof ctrl.buf};
  struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(cm), &efd, sizeof efd);
  /* MSG_NOSIGNAL: a reader gone already is an error here, not a SIGPIPE. */
  if (sendmsg(c, &m, MSG_NOSIGNAL) != n) {
    close(efd);
    close(c);
    return;
  }
  struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = c};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev) < 0) die("epoll_ctl", "reader");
  readers[nreaders].conn = c;
  readers[nreaders].efd = efd;
  nreaders++;
}

/* The lab's order: the data is updated and unlocked before any reader is woken. */
static void notify_all(void) {
  uint64_t one = 1;
  for (int i = 0; i < nreaders; i++)
    if (write(readers[i].efd, &one, sizeof one) != sizeof one) perror("c_writer: write eventfd");
}

static void shutdown_writer(int status) {
  lock_shm();
  shm->activation = false;
  pthread_mutex_unlock(&shm->lock);
  notify_all();
  /* The readers hold their own mappings; unlinking only removes the name. */
  shm_unlink(opt.name);
  if (!opt.abstract) unlink(opt.path);
  close(listen_fd);
  while (nreaders > 0) drop_reader(nreaders - 1);
  munmap(shm, sizeof *shm);
  exit(status);
}

static void command(const char *line) {
  if (strcmp(line, "-t") == 0) shutdown_writer(0);
  if (strcmp(line, "-s") == 0) {
    lock_shm();
    printf("counter=%d\nmessage=%s\n", shm->counter, shm->message);
    pthread_mutex_unlock(&shm->lock);
  } else if (strcmp(line, "-w") == 0 || strncmp(line, "-w ", 3) == 0) {
    const char *text = line[2] ? line + 3 : "";
    size_t len = strlen(text);
    if (len >= SHM_MSG_SIZE) {
      fprintf(stderr, "c_writer: message too long (%zu bytes, at most %d); nothing changed\n",
              len, SHM_MSG_SIZE - 1);
      return;
    }
    lock_shm();
    shm->counter++;
    memcpy(shm->message, text, len + 1);
    pthread_mutex_unlock(&shm->lock);
    notify_all();
  } else if (line[0] != '\0') {
    fprintf(stderr, "usage: -w TEXT (write a message) | -s (show) | -t (terminate)\n");
  }
}

/* Reads what stdin has and runs every complete line; end of input is -t. */
static char linebuf[LINE_MAX_BYTES];
static size_t linelen;
static int overlong;

static void read_stdin(void) {
  char buf[4096];
  ssize_t n = read(0, buf, sizeof buf);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n <= 0) {
    if (linelen > 0 && !overlong) {
      linebuf[linelen] = '\0';
      command(linebuf);
    }
    shutdown_writer(0);
  }
  for (ssize_t i = 0; i < n; i++) {
    if (buf[i] == '\n') {
      linebuf[linelen] = '\0';
      if (overlong) fprintf(stderr, "c_writer: line too long; ignored\n");
      else command(linebuf);
      linelen = 0;
      overlong = 0;
    } else if (linelen + 1 < sizeof linebuf) {
      linebuf[linelen++] = buf[i];
    } else {
      overlong = 1;
    }
  }
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  day56_parse(argc, argv, "c_writer", 0, &opt);
  day56_sockname(&opt, sockname, sizeof sockname);
  signal(SIGPIPE, SIG_IGN);

  pid_t other = live_writer();
  if (other != 0) {
    fprintf(stderr, "c_writer: another writer (pid %d) is serving %s; not starting\n",
            (int)other, sockname);
    return 1;
  }
  /* Termination signals come through a signalfd, so they are handled in the loop like any
   * other event and the cleanup runs in ordinary code. */
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGHUP);
  sigprocmask(SIG_BLOCK, &sigs, NULL);
  int sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
  if (sfd < 0) die("signalfd", NULL);

  setup_shm();
  setup_socket();

  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1", NULL);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = listen_fd};
  epoll_ctl(ep, EPOLL_CTL_ADD, listen_fd, &ev);
  ev.data.fd = sfd;
  epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);
  ev.data.fd = 0;
  /* epoll refuses regular files (EPERM): they are always readable, so stdin from a file is
   * read a chunk per loop turn instead of being watched. */
  int stdin_file = epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev) < 0;
  if (stdin_file && errno != EPERM) die("epoll_ctl", "stdin");

  for (;;) {
    struct epoll_event evs[16];
    int n = epoll_wait(ep, evs, 16, stdin_file ? 0 : -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) die("epoll_wait", NULL);
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd == listen_fd) {
        accept_reader(ep);
      } else if (fd == sfd) {
        struct signalfd_siginfo si;
        if (read(sfd, &si, sizeof si) == sizeof si) shutdown_writer(128 + (int)si.ssi_signo);
      } else if (fd == 0) {
        read_stdin();
      } else {
        /* A reader's connection: readers send nothing, so readable means gone (or garbage,
         * which is read and ignored). */
        char junk[256];
        ssize_t r = recv(fd, junk, sizeof junk, MSG_DONTWAIT);
        if (r <= 0 && !(r < 0 && errno == EAGAIN)) {
          for (int k = 0; k < nreaders; k++)
            if (readers[k].conn == fd) {
              drop_reader(k);
              break;
            }
        }
      }
    }
    if (stdin_file) read_stdin();
  }
}
