/*
 * baseline: the C side of `shmhost bench`. The same transfers the Lua side measures, written
 * directly in C between two processes made with fork, plus the two physical limits every
 * figure is compared with: memcpy bandwidth (throughput) and a cache line handed back and forth
 * between two cores (latency).
 *
 *   baseline [--quick] [--size BYTES] [--count N] [--rounds N] [--only NAME,...]
 *            [--deadline SECONDS] [--list]
 *
 * One line per measurement on stdout, machine-readable, so scripts/bench.lua can read it:
 *
 *   result mech=ring metric=throughput size=4096 count=20000 seconds=0.0123 value=6.6e+09 unit=B/s
 *   result mech=sem metric=latency size=1 count=20000 seconds=0.41 value=20512 unit=ns
 *   skip mech=futex metric=latency reason=TEXT TO THE END OF THE LINE
 *
 * Throughput moves `count` messages of `size` bytes from the parent to the child; the child
 * copies each one out and checks its sequence number, so nothing is measured that a real
 * receiver would not do. Latency is the time of one round trip of a one-byte message (or a
 * bare signal for the hand-off mechanisms), taken from batches of 100 round trips of which the
 * median batch counts. Each measurement is repeated `rounds` times and the fastest round is
 * reported: on a shared machine the least disturbed round is the closest to what the
 * mechanism costs.
 *
 * Every measurement runs in a process group of its own with a deadline (alarm), and the peer
 * dies with its parent (PR_SET_PDEATHSIG), so a hung or crashed transfer becomes a `skip`
 * line, never a hang. All shared memory is anonymous (MAP_SHARED | MAP_ANONYMOUS, inherited
 * across fork) and all descriptors are unnamed, so a run leaves nothing behind in /dev/shm,
 * in ipcs or under /tmp, however it ends.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ring.h"
#include "sync.h"

enum metric { THROUGHPUT, LATENCY };
static const char *const metric_names[] = {"throughput", "latency"};

struct params {
  size_t size;       /* bytes of a throughput message */
  long count;        /* messages (throughput) and round trips (latency) */
  int rounds;        /* repetitions; the fastest is reported */
  unsigned deadline; /* seconds one measurement may take, all rounds together */
};

/* The control block at the start of the shared region. Each word the two sides hand to each
 * other sits on a cache line of its own: two flags on one line would make both cores fight
 * over it even when each only touches its own flag. */
struct ctl {
  _Alignas(64) uint32_t ready;    /* the child is set up */
  _Alignas(64) uint32_t go;       /* the parent started the clock */
  _Alignas(64) uint32_t flag0;    /* spin and futex: parent -> child */
  _Alignas(64) uint32_t flag1;    /* spin and futex: child -> parent */
  _Alignas(64) uint64_t line;     /* the cache-line ping-pong counter */
  _Alignas(64) sem_t sem[2];      /* [0] parent -> child ("full"), [1] child -> parent */
};

#define CTL_BYTES 4096u
_Static_assert(sizeof(struct ctl) <= CTL_BYTES, "control block fits its page");
#define LAT_RING_CAP 4096u

struct signals;

/* What one transfer needs, made fresh for every round so no state carries over. */
struct ctx {
  const struct params *p;
  const struct signals *sig; /* the hand-off mechanisms' post and wait */
  long n;                    /* messages or round trips the next call of run does */
  uint64_t seq;              /* cache-line hand-offs done so far, across calls */
  unsigned char *region;     /* shared: ctl, then the data buffer, then the rings */
  size_t region_len;
  struct ctl *ctl;
  unsigned char *data;       /* the hand-off buffer (one message) */
  shmh_ring ring[2];         /* [0] parent -> child, [1] child -> parent (latency only) */
  size_t ring_off[2], ring_cap;
  int fd[2][2];              /* per direction: [read end, write end] (pipe, eventfd, socket) */
  unsigned char *msg;        /* private: the message the sender copies from */
  unsigned char *out;        /* private: where the receiver copies to */
};

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

/* Spinning waits give the core away now and then: with fewer free cores than spinners (a
 * shared machine), a pure spin would burn its whole time slice while the peer it waits for
 * cannot run. */
#define SPINS_BEFORE_YIELD 4096

static uint32_t *flag_of(struct ctl *c, int dir) { return dir == 0 ? &c->flag0 : &c->flag1; }

/* FUTEX_PRIVATE_FLAG stays off: the two sides are different processes, and a private futex
 * is keyed by the address in one process's address space. */
static long futex(uint32_t *w, int op, uint32_t val) {
  return syscall(SYS_futex, w, op, val, NULL, NULL, 0);
}

static int write_all(int fd, const void *buf, size_t len) {
  const unsigned char *p = buf;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n < 0 ? -errno : -EPIPE;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

static int read_all(int fd, void *buf, size_t len) {
  unsigned char *p = buf;
  while (len > 0) {
    ssize_t n = read(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n < 0 ? -errno : -EPIPE; /* 0: the peer closed its end */
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* ------------------------------------------------------------ signals between the sides */

/* The hand-off mechanisms share one shape: a signal in each direction. For throughput, [0]
 * says "the buffer is full" and [1] "the buffer is empty" (alternating access, as in the
 * course's transfer exercise); for latency, [0] is the ping and [1] the pong. */
struct signals {
  int (*post)(struct ctx *x, int dir);
  int (*wait)(struct ctx *x, int dir);
};

static int sem_post_dir(struct ctx *x, int dir) { return shmh_sem_post(&x->ctl->sem[dir]); }
static int sem_wait_dir(struct ctx *x, int dir) { return shmh_sem_wait(&x->ctl->sem[dir]); }

/* eventfd: a write adds to the kernel counter, a blocking read takes it and resets it. */
static int efd_post(struct ctx *x, int dir) {
  uint64_t one = 1;
  return write_all(x->fd[dir][1], &one, sizeof one);
}
static int efd_wait(struct ctx *x, int dir) {
  uint64_t v;
  return read_all(x->fd[dir][0], &v, sizeof v);
}

/* futex: 0 nothing posted, 1 posted, 2 the waiter is asleep. The poster makes the wake call
 * only when it replaces a 2, so a waiter that never had to sleep costs no system call; a post
 * that lands between the waiter's 0 -> 2 and its FUTEX_WAIT changes the word, and the kernel
 * then refuses to sleep (EAGAIN). */
static int futex_post(struct ctx *x, int dir) {
  uint32_t *w = flag_of(x->ctl, dir);
  if (__atomic_exchange_n(w, 1, __ATOMIC_SEQ_CST) == 2) futex(w, FUTEX_WAKE, 1);
  return 0;
}
static int futex_wait_dir(struct ctx *x, int dir) {
  uint32_t *w = flag_of(x->ctl, dir);
  for (;;) {
    uint32_t one = 1, zero = 0;
    if (__atomic_compare_exchange_n(w, &one, 0, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) return 0;
    if (__atomic_compare_exchange_n(w, &zero, 2, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED) ||
        zero == 2) {
      if (futex(w, FUTEX_WAIT, 2) != 0 && errno != EAGAIN && errno != EINTR) return -errno;
    }
  }
}

/* spin: a flag word, polled; no system call on either side. */
static int spin_post(struct ctx *x, int dir) {
  __atomic_store_n(flag_of(x->ctl, dir), 1, __ATOMIC_RELEASE);
  return 0;
}
static int spin_wait(struct ctx *x, int dir) {
  uint32_t *w = flag_of(x->ctl, dir);
  for (unsigned i = 1; !__atomic_load_n(w, __ATOMIC_ACQUIRE); i++) {
    cpu_relax();
    if (i % SPINS_BEFORE_YIELD == 0) sched_yield();
  }
  __atomic_store_n(w, 0, __ATOMIC_RELAXED);
  return 0;
}

/* A byte over a pipe or a socket, one descriptor pair per direction (a socketpair serves both
 * directions: fd[0] and fd[1] are then the two ends, see setup_unix). */
static int byte_post(struct ctx *x, int dir) { return write_all(x->fd[dir][1], "x", 1); }
static int byte_wait(struct ctx *x, int dir) {
  char c;
  return read_all(x->fd[dir][0], &c, 1);
}

/* ------------------------------------------------------------ the mechanisms */

struct mech {
  const char *name;
  const char *what;
  unsigned metrics;                 /* 1 << THROUGHPUT | 1 << LATENCY */
  int (*setup)(struct ctx *x, enum metric m);
  struct signals sig;               /* hand-off mechanisms */
  /* Mechanisms with their own transfer (ring, pipe, socket, memcpy, cacheline) instead;
   * side 0 is the parent, 1 the child. */
  int (*run)(struct ctx *x, enum metric m, int side);
};

static int setup_none(struct ctx *x, enum metric m) { return 0; }

static int setup_sem(struct ctx *x, enum metric m) {
  /* Throughput starts with an empty buffer: "empty" (1) holds one token. */
  int rc = shmh_sem_init(&x->ctl->sem[0], 0);
  if (rc == 0) rc = shmh_sem_init(&x->ctl->sem[1], m == THROUGHPUT);
  return rc;
}

static int setup_efd(struct ctx *x, enum metric m) {
  for (int d = 0; d < 2; d++) {
    int fd = eventfd(d == 1 && m == THROUGHPUT, EFD_CLOEXEC);
    if (fd < 0) return -errno;
    x->fd[d][0] = x->fd[d][1] = fd;
  }
  return 0;
}

static int setup_flags(struct ctx *x, enum metric m) {
  *flag_of(x->ctl, 0) = 0;
  *flag_of(x->ctl, 1) = m == THROUGHPUT;
  return 0;
}

static int setup_pipe(struct ctx *x, enum metric m) {
  for (int d = 0; d < 2; d++)
    if (pipe2(x->fd[d], O_CLOEXEC) != 0) return -errno;
  return 0;
}

/* One stream socketpair: the parent uses sv[0], the child sv[1], in both directions. Written
 * into fd[][] so byte_post/byte_wait find the right end: the parent writes [0][1] and reads
 * [1][0]; the child reads [0][0] and writes [1][1]. */
static int setup_unix(struct ctx *x, enum metric m) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return -errno;
  x->fd[0][1] = sv[0];
  x->fd[1][0] = sv[0];
  x->fd[0][0] = sv[1];
  x->fd[1][1] = sv[1];
  return 0;
}

static int setup_ring(struct ctx *x, enum metric m) {
  int n = m == THROUGHPUT ? 1 : 2;
  for (int i = 0; i < n; i++) {
    int rc = shmh_ring_create(&x->ring[i], x->region + x->ring_off[i],
                              shmh_ring_footprint(x->ring_cap), x->ring_cap);
    if (rc < 0) return rc;
  }
  return 0;
}

/* Stamps message i so the receiver can tell a lost, repeated or torn message. */
static void stamp(unsigned char *msg, size_t size, long i) {
  uint64_t v = (uint64_t)i;
  memcpy(msg, &v, size < sizeof v ? size : sizeof v);
  if (size > sizeof v) msg[size - 1] = (unsigned char)i;
}

static int check_stamp(const unsigned char *msg, size_t size, long i) {
  unsigned char want[sizeof(uint64_t)] = {0};
  stamp(want, size < sizeof want ? size : sizeof want, i);
  if (memcmp(msg, want, size < sizeof want ? size : sizeof want) != 0) return -EBADMSG;
  if (size > sizeof want && msg[size - 1] != (unsigned char)i) return -EBADMSG;
  return 0;
}

static int handoff_throughput(struct ctx *x, const struct signals *s, int side) {
  size_t size = x->p->size;
  for (long i = 0; i < x->n; i++) {
    int rc;
    if (side == 0) {
      if ((rc = s->wait(x, 1)) < 0) return rc;
      stamp(x->msg, size, i);
      memcpy(x->data, x->msg, size);
      if ((rc = s->post(x, 0)) < 0) return rc;
    } else {
      if ((rc = s->wait(x, 0)) < 0) return rc;
      memcpy(x->out, x->data, size);
      if ((rc = s->post(x, 1)) < 0) return rc;
      if ((rc = check_stamp(x->out, size, i)) < 0) return rc;
    }
  }
  return 0;
}

static int handoff_latency(struct ctx *x, const struct signals *s, int side) {
  for (long i = 0; i < x->n; i++) {
    int rc = side == 0 ? s->post(x, 0) : s->wait(x, 0);
    if (rc == 0) rc = side == 0 ? s->wait(x, 1) : s->post(x, 1);
    if (rc < 0) return rc;
  }
  return 0;
}

static int ring_send(shmh_ring *r, const void *msg, size_t len) {
  for (;;) {
    int rc = shmh_ring_push(r, msg, len);
    if (rc != -EAGAIN) return rc;
    /* The same policy as the Lua binding: spin a little, then sleep on the futex word. */
    if ((rc = shmh_ring_wait(r, SHMH_RING_PRODUCER, len, 1000, 100, -1)) < 0) return rc;
  }
}

static int ring_recv(shmh_ring *r, void *buf, size_t size, size_t *len) {
  for (;;) {
    int rc = shmh_ring_pop(r, buf, size, len);
    if (rc != -EAGAIN) return rc;
    if ((rc = shmh_ring_wait(r, SHMH_RING_CONSUMER, 0, 1000, 100, -1)) < 0) return rc;
  }
}

static int run_ring(struct ctx *x, enum metric m, int side) {
  size_t size = x->p->size, len;
  for (long i = 0; i < x->n; i++) {
    int rc;
    if (m == THROUGHPUT && side == 0) {
      stamp(x->msg, size, i);
      rc = ring_send(&x->ring[0], x->msg, size);
    } else if (m == THROUGHPUT) {
      rc = ring_recv(&x->ring[0], x->out, size, &len);
      if (rc == 0) rc = len == size ? check_stamp(x->out, size, i) : -EBADMSG;
    } else if (side == 0) {
      rc = ring_send(&x->ring[0], "p", 1);
      if (rc == 0) rc = ring_recv(&x->ring[1], x->out, 1, &len);
    } else {
      rc = ring_recv(&x->ring[0], x->out, 1, &len);
      if (rc == 0) rc = ring_send(&x->ring[1], "q", 1);
    }
    if (rc < 0) return rc;
  }
  return 0;
}

/* pipe and socket throughput: a byte stream, read back into whole messages. */
static int run_stream(struct ctx *x, enum metric m, int side) {
  if (m == LATENCY) return handoff_latency(x, &(struct signals){byte_post, byte_wait}, side);
  size_t size = x->p->size;
  for (long i = 0; i < x->n; i++) {
    int rc;
    if (side == 0) {
      stamp(x->msg, size, i);
      rc = write_all(x->fd[0][1], x->msg, size);
    } else {
      rc = read_all(x->fd[0][0], x->out, size);
      if (rc == 0) rc = check_stamp(x->out, size, i);
    }
    if (rc < 0) return rc;
  }
  return 0;
}

/* One cache line, a counter in it: the parent moves it from even to odd, the child from odd
 * to even. Each hand-off is the line travelling between two cores' caches, the floor under
 * any notification through shared memory. */
static int run_cacheline(struct ctx *x, enum metric m, int side) {
  uint64_t *line = &x->ctl->line;
  for (long i = 0; i < x->n; i++, x->seq++) {
    uint64_t want = 2 * x->seq + (uint64_t)side;
    for (unsigned k = 1; __atomic_load_n(line, __ATOMIC_ACQUIRE) != want; k++) {
      cpu_relax();
      if (k % SPINS_BEFORE_YIELD == 0) sched_yield();
    }
    __atomic_store_n(line, want + 1, __ATOMIC_RELEASE);
  }
  return 0;
}

static int run_handoff(struct ctx *x, enum metric m, int side) {
  return m == THROUGHPUT ? handoff_throughput(x, x->sig, side) : handoff_latency(x, x->sig, side);
}

/* memcpy bandwidth: one process, messages of `size` copied through a window as large as the
 * ring's data area (a megabyte), walked the way the ring walks it. */
#define MEMCPY_WINDOW (1u << 20)

static const struct mech mechs[] = {
    {"memcpy", "memcpy bandwidth in one process (throughput limit)", 1u << THROUGHPUT,
     setup_none, {NULL, NULL}, NULL},
    {"cacheline", "one cache line handed between two processes (latency limit)", 1u << LATENCY,
     setup_none, {NULL, NULL}, run_cacheline},
    {"ring", "the shmhost ring (host/core/ring.c) in a shared mapping", 3u, setup_ring,
     {NULL, NULL}, run_ring},
    {"sem", "two process-shared semaphores, alternating access to a buffer", 3u, setup_sem,
     {sem_post_dir, sem_wait_dir}, run_handoff},
    {"eventfd", "two eventfds, alternating access to a buffer", 3u, setup_efd,
     {efd_post, efd_wait}, run_handoff},
    {"futex", "a futex word in shared memory per direction", 3u, setup_flags,
     {futex_post, futex_wait_dir}, run_handoff},
    {"spin", "a spin word in shared memory per direction", 3u, setup_flags,
     {spin_post, spin_wait}, run_handoff},
    {"pipe", "two pipes (write/read)", 3u, setup_pipe, {NULL, NULL}, run_stream},
    {"unix", "an AF_UNIX stream socketpair", 3u, setup_unix, {NULL, NULL}, run_stream},
};
#define NMECHS (sizeof mechs / sizeof mechs[0])

/* ------------------------------------------------------------ one round */

static void ctx_close(struct ctx *x) {
  for (int d = 0; d < 2; d++)
    for (int e = 0; e < 2; e++) {
      int fd = x->fd[d][e];
      if (fd < 0) continue;
      close(fd);
      /* eventfds and the socketpair appear twice in the table: close each once. */
      for (int d2 = 0; d2 < 2; d2++)
        for (int e2 = 0; e2 < 2; e2++)
          if (x->fd[d2][e2] == fd) x->fd[d2][e2] = -1;
    }
  if (x->region != NULL) munmap(x->region, x->region_len);
  free(x->msg);
  free(x->out);
}

static size_t align_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

static int ctx_open(struct ctx *x, const struct params *p, enum metric m) {
  memset(x, 0, sizeof *x);
  memset(x->fd, -1, sizeof x->fd);
  x->p = p;
  size_t size = p->size ? p->size : 1;
  if (m == THROUGHPUT) {
    /* A megabyte, or four messages when they are larger: enough to keep both sides busy
     * (the Lua side sizes its ring the same way). */
    uint64_t cap = shmh_ring_cost(size) * 4;
    x->ring_cap = align_up(cap < (1u << 20) ? (1u << 20) : (size_t)cap, 8);
  } else {
    x->ring_cap = LAT_RING_CAP;
  }
  x->ring_off[0] = CTL_BYTES + align_up(size, 4096);
  x->ring_off[1] = x->ring_off[0] + align_up(shmh_ring_footprint(x->ring_cap), 4096);
  x->region_len = x->ring_off[1] + align_up(shmh_ring_footprint(x->ring_cap), 4096);
  void *mem = mmap(NULL, x->region_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return -errno;
  x->region = mem;
  x->ctl = mem;
  x->data = x->region + CTL_BYTES;
  x->msg = calloc(1, size);
  x->out = calloc(1, size);
  if (x->msg == NULL || x->out == NULL) return -ENOMEM;
  return 0;
}

static int run_memcpy(const struct params *p, double *seconds) {
  size_t size = p->size ? p->size : 1;
  size_t window = size > MEMCPY_WINDOW ? size : MEMCPY_WINDOW;
  unsigned char *src = malloc(window), *dst = malloc(window);
  if (src == NULL || dst == NULL) {
    free(src);
    free(dst);
    return -ENOMEM;
  }
  /* Touch every page first, so page faults are not measured. */
  memset(src, 1, window);
  memset(dst, 2, window);
  size_t slots = window / size, at = 0;
  double t0 = now_s();
  for (long i = 0; i < p->count; i++) {
    src[at * size] = (unsigned char)i;
    memcpy(dst + at * size, src + at * size, size);
    if (++at == slots) at = 0;
  }
  /* Reading the destination keeps the compiler from dropping the copies. */
  __asm__ __volatile__("" : : "r"(dst) : "memory");
  *seconds = now_s() - t0;
  free(src);
  free(dst);
  return 0;
}

/* A forked child starts on its parent's CPU and stays there until the load balancer moves it,
 * which can take longer than a whole short measurement: two spinners sharing one core then
 * hand over only when one yields, and the figure measures the scheduler. A process started by
 * exec (how the Lua side starts its peer) is placed on an idle CPU instead. This does the same
 * for the child: it steps off the parent's CPU, then takes back its whole mask, so nothing
 * stays pinned and the scheduler is free to move it later. */
static void leave_cpu(int cpu) {
  cpu_set_t all, others;
  if (cpu < 0 || sched_getaffinity(0, sizeof all, &all) != 0) return;
  others = all;
  CPU_CLR(cpu, &others);
  if (CPU_COUNT(&others) == 0) return;
  if (sched_setaffinity(0, sizeof others, &others) == 0) sched_setaffinity(0, sizeof all, &all);
}

static void wait_flag(uint32_t *w) {
  for (unsigned i = 1; !__atomic_load_n(w, __ATOMIC_ACQUIRE); i++) {
    cpu_relax();
    if (i % SPINS_BEFORE_YIELD == 0) sched_yield();
  }
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Latency is timed in batches of BATCH round trips and the median batch counts: a burst of
 * noise (another process taking the core for a few milliseconds) spoils a few batches, not
 * the figure. Round trips that do not fill a batch run first, untimed, as a warm-up. *per is
 * the median batch's time per round trip. */
#define BATCH 100

static int run_batches(const struct mech *m, struct ctx *x, double *per) {
  long count = x->p->count, b = count < BATCH ? count : BATCH, nb = count / b;
  double *t = malloc((size_t)nb * sizeof *t);
  if (t == NULL) return -ENOMEM;
  int rc = 0;
  x->n = count % b;
  if (x->n > 0) rc = m->run(x, LATENCY, 0);
  x->n = b;
  for (long i = 0; i < nb && rc == 0; i++) {
    double t0 = now_s();
    rc = m->run(x, LATENCY, 0);
    t[i] = now_s() - t0;
  }
  if (rc == 0) {
    qsort(t, (size_t)nb, sizeof *t, cmp_double);
    *per = t[nb / 2] / (double)b;
  }
  free(t);
  return rc;
}

/* Runs one round of a two-process transfer. *seconds is, for throughput, the parent's time
 * from the start signal to the child's report that it received everything; for latency, the
 * median batch's pace times the count. */
static int run_round(const struct mech *m, enum metric met, const struct params *p,
                     double *seconds) {
  if (m->run == NULL) return run_memcpy(p, seconds);
  struct ctx x;
  int rc = ctx_open(&x, p, met);
  x.sig = &m->sig;
  int done[2] = {-1, -1};
  if (rc == 0) rc = m->setup(&x, met);
  if (rc == 0 && pipe2(done, O_CLOEXEC) != 0) rc = -errno;
  if (rc < 0) goto out;
  fflush(NULL);
  int cpu = sched_getcpu();
  pid_t parent = getpid(), child = fork();
  if (child < 0) {
    rc = -errno;
    goto out;
  }
  if (child == 0) {
    /* The child dies with the measuring process, whatever kills it. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(3);
    leave_cpu(cpu);
    __atomic_store_n(&x.ctl->ready, 1, __ATOMIC_RELEASE);
    wait_flag(&x.ctl->go);
    x.n = p->count;
    int crc = m->run(&x, met, 1);
    char status = crc == 0 ? 0 : (char)-crc;
    _exit(write_all(done[1], &status, 1) == 0 && crc == 0 ? 0 : 4);
  }
  wait_flag(&x.ctl->ready);
  double t0 = now_s();
  __atomic_store_n(&x.ctl->go, 1, __ATOMIC_RELEASE);
  double per = 0;
  x.n = p->count;
  rc = met == LATENCY ? run_batches(m, &x, &per) : m->run(&x, met, 0);
  char status = 0;
  if (rc == 0) rc = read_all(done[0], &status, 1);
  *seconds = met == LATENCY ? per * (double)p->count : now_s() - t0;
  if (rc == 0 && status != 0) rc = -(int)(unsigned char)status;
  if (rc < 0) kill(child, SIGKILL);
  int ws;
  while (waitpid(child, &ws, 0) < 0 && errno == EINTR) {
  }
  if (rc == 0 && !(WIFEXITED(ws) && WEXITSTATUS(ws) == 0)) rc = -EPIPE;
out:
  if (done[0] >= 0) close(done[0]);
  if (done[1] >= 0) close(done[1]);
  ctx_close(&x);
  return rc;
}

/* The measuring process: all rounds of one measurement, one line on stdout. */
static int measure(const struct mech *m, enum metric met, const struct params *p) {
  double best = -1;
  for (int r = 0; r < p->rounds; r++) {
    double s = 0;
    int rc = run_round(m, met, p, &s);
    if (rc < 0) {
      printf("skip mech=%s metric=%s reason=%s\n", m->name, metric_names[met],
             rc == -EBADMSG ? "the receiver saw a wrong message" : strerror(-rc));
      return 1;
    }
    if (best < 0 || s < best) best = s;
  }
  /* A clock too coarse for a tiny run must not give an infinite rate. */
  if (best <= 0) best = 1e-9;
  size_t size = met == LATENCY ? 1 : p->size;
  double value = met == THROUGHPUT ? (double)p->size * (double)p->count / best
                                   : best * 1e9 / (double)p->count;
  printf("result mech=%s metric=%s size=%zu count=%ld seconds=%.6f value=%.6g unit=%s\n",
         m->name, metric_names[met], size, p->count, best, value,
         met == THROUGHPUT ? "B/s" : "ns");
  return 0;
}

/* Runs a measurement in its own process group with a deadline, and reports a hang or a crash
 * as a skip line instead of taking the whole run down with it. */
static void supervise(const struct mech *m, enum metric met, const struct params *p) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    printf("skip mech=%s metric=%s reason=fork: %s\n", m->name, metric_names[met],
           strerror(errno));
    return;
  }
  if (pid == 0) {
    setpgid(0, 0);
    /* Out of our process group, so a kill of ours would miss it: it dies with us instead. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    /* SIGALRM's default action ends the process; its peer follows through PDEATHSIG. */
    alarm(p->deadline);
    _exit(measure(m, met, p) == 0 ? 0 : 1);
  }
  setpgid(pid, pid);
  int ws;
  while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {
  }
  kill(-pid, SIGKILL); /* anything left in its group */
  if (WIFSIGNALED(ws))
    printf("skip mech=%s metric=%s reason=%s after %us\n", m->name, metric_names[met],
           WTERMSIG(ws) == SIGALRM ? "deadline passed" : strsignal(WTERMSIG(ws)), p->deadline);
}

/* ------------------------------------------------------------ command line */

static void usage(FILE *f) {
  fprintf(f,
          "usage: baseline [--quick] [--size BYTES] [--count N] [--rounds N] [--only NAME,...]\n"
          "                [--deadline SECONDS] [--list]\n");
}

static int parse_long(const char *opt, const char *s, long lo, long hi, long *out) {
  char *end;
  errno = 0;
  long v = s ? strtol(s, &end, 10) : 0;
  if (s == NULL || *s == '\0' || *end != '\0' || errno != 0 || v < lo || v > hi) {
    fprintf(stderr, "baseline: %s wants an integer from %ld to %ld, got '%s'\n", opt, lo, hi,
            s ? s : "");
    return -1;
  }
  *out = v;
  return 0;
}

static int selected(const char *only, const char *name) {
  if (only == NULL) return 1;
  size_t n = strlen(name);
  for (const char *p = only; *p;) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    if (len == n && strncmp(p, name, n) == 0) return 1;
    p += len + (comma != NULL);
  }
  return 0;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  /* A reader that goes away must end us with an error, not a signal. */
  signal(SIGPIPE, SIG_IGN);
  /* shmhost bench starts us in a process group of our own; if it dies, so do we (and our
   * measurements after us, through theirs). */
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  struct params p = {4096, 20000, 3, 60};
  long size = -1, count = -1, rounds = -1, deadline = -1;
  const char *only = NULL;
  int quick = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    int rc = 0;
    if (strcmp(a, "--quick") == 0) {
      quick = 1;
      continue;
    } else if (strcmp(a, "--list") == 0) {
      for (size_t k = 0; k < NMECHS; k++)
        printf("%-10s %s%s%s\n", mechs[k].name, mechs[k].what,
               mechs[k].metrics & (1u << THROUGHPUT) ? " [throughput]" : "",
               mechs[k].metrics & (1u << LATENCY) ? " [latency]" : "");
      return 0;
    } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      usage(stdout);
      return 0;
    } else if (strcmp(a, "--size") == 0) {
      rc = parse_long(a, v, 1, 16L << 20, &size);
    } else if (strcmp(a, "--count") == 0) {
      rc = parse_long(a, v, 1, 1L << 30, &count);
    } else if (strcmp(a, "--rounds") == 0) {
      rc = parse_long(a, v, 1, 1000, &rounds);
    } else if (strcmp(a, "--deadline") == 0) {
      rc = parse_long(a, v, 1, 86400, &deadline);
    } else if (strcmp(a, "--only") == 0) {
      if (v == NULL || *v == '\0') {
        fprintf(stderr, "baseline: --only wants a list of names\n");
        return 2;
      }
      only = v;
    } else {
      fprintf(stderr, "baseline: unknown option '%s'\n", a);
      usage(stderr);
      return 2;
    }
    if (rc < 0) return 2;
    i++;
  }
  if (quick) {
    p.count = 1000;
    p.rounds = 2;
    p.deadline = 20;
  }
  if (size > 0) p.size = (size_t)size;
  if (count > 0) p.count = count;
  if (rounds > 0) p.rounds = (int)rounds;
  if (deadline > 0) p.deadline = (unsigned)deadline;
  if (only != NULL) {
    /* A misspelt name must not pass silently as "nothing to measure". */
    for (const char *s = only; *s;) {
      const char *comma = strchr(s, ',');
      size_t len = comma ? (size_t)(comma - s) : strlen(s);
      int known = 0;
      for (size_t k = 0; k < NMECHS; k++)
        known |= strlen(mechs[k].name) == len && strncmp(mechs[k].name, s, len) == 0;
      if (!known) {
        fprintf(stderr, "baseline: --only: unknown name '%.*s' (see --list)\n", (int)len, s);
        return 2;
      }
      s += len + (comma != NULL);
    }
  }
  for (int met = THROUGHPUT; met <= LATENCY; met++)
    for (size_t k = 0; k < NMECHS; k++)
      if ((mechs[k].metrics & (1u << met)) && selected(only, mechs[k].name))
        supervise(&mechs[k], (enum metric)met, &p);
  return 0;
}
