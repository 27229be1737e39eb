/*
 * Unit tests of the sync core with real processes: a robust mutex whose holder is killed, two
 * processes alternating on two semaphores, lost-update checks, timeouts, named semaphores,
 * futex words waited on in one process and woken from another.
 * Shared memory here is an anonymous MAP_SHARED mapping made before fork, which is shared with
 * the child exactly as a shm_open object would be.
 */
#include "check.h"
#include "sync.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <time.h>

struct shared {
  pthread_mutex_t m;
  sem_t a, b;
  long counter;
  int guarded; /* set to 1 inside the critical section, 0 on leaving it */
};

static struct shared *shared_new(void) {
  struct shared *s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  CHECK(s != MAP_FAILED);
  memset(s, 0, sizeof *s);
  return s;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Waits for a child and requires it to have exited with status 0. */
static void reap_ok(pid_t pid) {
  int st;
  CHECK(waitpid(pid, &st, 0) == pid);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void t_mutex_basics(void) {
  struct shared *s = shared_new();
  CHECK_EQ(shmh_mutex_init(&s->m, NULL), 0);
  CHECK_EQ(shmh_mutex_lock(&s->m), 0);
  CHECK(shmh_mutex_held_by_me(&s->m));
  /* Error-checking: relocking is refused, not a hang; trylock says busy. */
  CHECK_EQ(shmh_mutex_lock(&s->m), -EDEADLK);
  CHECK_EQ(shmh_mutex_timedlock(&s->m, 0.1), -EDEADLK);
  CHECK_EQ(shmh_mutex_trylock(&s->m), -EBUSY);
  /* Another process sees it busy and cannot unlock it. */
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    CHECK(!shmh_mutex_held_by_me(&s->m));
    CHECK_EQ(shmh_mutex_trylock(&s->m), -EBUSY);
    CHECK_EQ(shmh_mutex_unlock(&s->m), -EPERM);
    _exit(0);
  }
  reap_ok(pid);
  CHECK_EQ(shmh_mutex_unlock(&s->m), 0);
  CHECK(!shmh_mutex_held_by_me(&s->m));
  CHECK_EQ(shmh_mutex_unlock(&s->m), -EPERM);
  CHECK_EQ(shmh_mutex_trylock(&s->m), 0);
  CHECK_EQ(shmh_mutex_unlock(&s->m), 0);
  CHECK_EQ(shmh_mutex_destroy(&s->m), 0);

  /* A normal mutex relocked by its holder would hang: refused instead. */
  struct shmh_mutex_opts o = {.robust = 0, .type = SHMH_MUTEX_NORMAL};
  CHECK_EQ(shmh_mutex_init(&s->m, &o), 0);
  CHECK_EQ(shmh_mutex_lock(&s->m), 0);
  CHECK_EQ(shmh_mutex_lock(&s->m), -EDEADLK);
  CHECK_EQ(shmh_mutex_unlock(&s->m), 0);
  /* A recursive one nests. */
  o.type = SHMH_MUTEX_RECURSIVE;
  CHECK_EQ(shmh_mutex_init(&s->m, &o), 0);
  CHECK_EQ(shmh_mutex_lock(&s->m), 0);
  CHECK_EQ(shmh_mutex_lock(&s->m), 0);
  CHECK_EQ(shmh_mutex_unlock(&s->m), 0);
  CHECK_EQ(shmh_mutex_unlock(&s->m), 0);
  CHECK_EQ(shmh_mutex_unlock(&s->m), -EPERM);
  o.type = (enum shmh_mutex_type)42;
  CHECK_EQ(shmh_mutex_init(&s->m, &o), -EINVAL);
  munmap(s, sizeof *s);
}

/* 50 times: a child takes the lock, says so, and is killed with SIGKILL while holding it.
 * The next lock returns SHMH_OWNER_DIED within a second, holds the lock, and the mutex is
 * usable again afterwards (consistent already). */
static void t_owner_died(void) {
  struct shared *s = shared_new();
  CHECK_EQ(shmh_mutex_init(&s->m, NULL), 0);
  for (int round = 0; round < 50; round++) {
    int p[2];
    CHECK(pipe(p) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
      close(p[0]);
      if (shmh_mutex_lock(&s->m) < 0) _exit(2);
      s->guarded = 1; /* half way through an update when it dies */
      if (write(p[1], "L", 1) != 1) _exit(3);
      for (;;) pause();
    }
    close(p[1]);
    char c;
    CHECK_EQ(read(p[0], &c, 1), 1);
    close(p[0]);
    CHECK_EQ(shmh_mutex_trylock(&s->m), -EBUSY);
    CHECK(kill(pid, SIGKILL) == 0);
    int st;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    double t0 = now();
    int rc = round % 2 ? shmh_mutex_timedlock(&s->m, 1.0) : shmh_mutex_lock(&s->m);
    CHECK_EQ(rc, SHMH_OWNER_DIED);
    CHECK(now() - t0 < 1.0);
    CHECK(shmh_mutex_held_by_me(&s->m));
    CHECK_EQ(s->guarded, 1);
    s->guarded = 0; /* the repair */
    s->counter++;
    CHECK_EQ(shmh_mutex_unlock(&s->m), 0);
    CHECK_EQ(shmh_mutex_trylock(&s->m), 0);
    CHECK_EQ(shmh_mutex_unlock(&s->m), 0);
  }
  CHECK_EQ(s->counter, 50);
  munmap(s, sizeof *s);
}

/* A holder that dies is noticed by a waiter already blocked in lock, too. */
static void t_owner_died_while_waiting(void) {
  struct shared *s = shared_new();
  CHECK_EQ(shmh_mutex_init(&s->m, NULL), 0);
  int p[2];
  CHECK(pipe(p) == 0);
  pid_t holder = fork();
  CHECK(holder >= 0);
  if (holder == 0) {
    close(p[0]);
    if (shmh_mutex_lock(&s->m) < 0) _exit(2);
    if (write(p[1], "L", 1) != 1) _exit(3);
    usleep(200000);
    _exit(0); /* exits holding it: the kernel's robust list marks it owner-died */
  }
  close(p[1]);
  char c;
  CHECK_EQ(read(p[0], &c, 1), 1);
  close(p[0]);
  double t0 = now();
  CHECK_EQ(shmh_mutex_timedlock(&s->m, 5.0), SHMH_OWNER_DIED);
  CHECK(now() - t0 < 2.0);
  reap_ok(holder);
  CHECK_EQ(shmh_mutex_unlock(&s->m), 0);
  munmap(s, sizeof *s);
}

/* Four processes add 20,000 each under the mutex: nothing lost. */
static void t_mutex_no_lost_updates(void) {
  struct shared *s = shared_new();
  CHECK_EQ(shmh_mutex_init(&s->m, NULL), 0);
  enum { PROCS = 4, EACH = 20000 };
  pid_t pids[PROCS];
  for (int i = 0; i < PROCS; i++) {
    pids[i] = fork();
    CHECK(pids[i] >= 0);
    if (pids[i] == 0) {
      for (int k = 0; k < EACH; k++) {
        if (shmh_mutex_lock(&s->m) != 0) _exit(2);
        long v = s->counter;
        if (s->guarded) _exit(4); /* two holders at once */
        s->guarded = 1;
        s->counter = v + 1;
        s->guarded = 0;
        if (shmh_mutex_unlock(&s->m) != 0) _exit(3);
      }
      _exit(0);
    }
  }
  for (int i = 0; i < PROCS; i++) reap_ok(pids[i]);
  CHECK_EQ(s->counter, PROCS * EACH);
  munmap(s, sizeof *s);
}

static void t_timeouts(void) {
  struct shared *s = shared_new();
  CHECK_EQ(shmh_mutex_init(&s->m, NULL), 0);
  int p[2], q[2];
  CHECK(pipe(p) == 0 && pipe(q) == 0);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    close(p[0]);
    close(q[1]);
    if (shmh_mutex_lock(&s->m) != 0) _exit(2);
    if (write(p[1], "L", 1) != 1) _exit(3);
    char c;
    if (read(q[0], &c, 1) != 1) _exit(4); /* hold until told */
    shmh_mutex_unlock(&s->m);
    _exit(0);
  }
  close(p[1]);
  close(q[0]);
  char c;
  CHECK_EQ(read(p[0], &c, 1), 1);
  double t0 = now();
  CHECK_EQ(shmh_mutex_timedlock(&s->m, 0.2), -ETIMEDOUT);
  double dt = now() - t0;
  CHECK(dt >= 0.19 && dt < 2.0);
  CHECK_EQ(shmh_mutex_timedlock(&s->m, 0), -ETIMEDOUT);
  CHECK_EQ(write(q[1], "U", 1), 1);
  reap_ok(pid);
  CHECK_EQ(shmh_mutex_timedlock(&s->m, 1.0), 0);
  CHECK_EQ(shmh_mutex_unlock(&s->m), 0);

  CHECK_EQ(shmh_sem_init(&s->a, 0), 0);
  t0 = now();
  CHECK_EQ(shmh_sem_timedwait(&s->a, 0.15), -ETIMEDOUT);
  dt = now() - t0;
  CHECK(dt >= 0.14 && dt < 2.0);
  CHECK_EQ(shmh_sem_trywait(&s->a), -EAGAIN);
  CHECK_EQ(shmh_sem_post(&s->a), 0);
  CHECK_EQ(shmh_sem_timedwait(&s->a, 0.15), 0);
  CHECK_EQ(shmh_sem_destroy(&s->a), 0);
  close(p[0]);
  close(q[1]);
  munmap(s, sizeof *s);
}

static void t_sem_values(void) {
  struct shared *s = shared_new();
  int v = -1;
  CHECK_EQ(shmh_sem_init(&s->a, 3), 0);
  CHECK_EQ(shmh_sem_getvalue(&s->a, &v), 0);
  CHECK_EQ(v, 3);
  CHECK_EQ(shmh_sem_trywait(&s->a), 0);
  CHECK_EQ(shmh_sem_wait(&s->a), 0);
  CHECK_EQ(shmh_sem_getvalue(&s->a, &v), 0);
  CHECK_EQ(v, 1);
  CHECK_EQ(shmh_sem_init(&s->b, SEM_VALUE_MAX), 0);
  CHECK_EQ(shmh_sem_post(&s->b), -EOVERFLOW);
  CHECK_EQ(shmh_sem_init(&s->b, (unsigned int)SEM_VALUE_MAX + 1u), -EINVAL);
  munmap(s, sizeof *s);
}

/* The course's alternating access: two processes, two semaphores, 10,000 turns each; the
 * counter proves every turn happened once and in order. */
static void t_sem_alternate(void) {
  struct shared *s = shared_new();
  CHECK_EQ(shmh_sem_init(&s->a, 1), 0);
  CHECK_EQ(shmh_sem_init(&s->b, 0), 0);
  enum { TURNS = 10000 };
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    for (int i = 0; i < TURNS; i++) {
      if (shmh_sem_wait(&s->b) != 0) _exit(2);
      if (s->counter != 2L * i + 1) _exit(3); /* the other side's turn came first */
      s->counter++;
      if (shmh_sem_post(&s->a) != 0) _exit(4);
    }
    _exit(0);
  }
  for (int i = 0; i < TURNS; i++) {
    CHECK_EQ(shmh_sem_timedwait(&s->a, 10.0), 0);
    CHECK_EQ(s->counter, 2L * i);
    s->counter++;
    CHECK_EQ(shmh_sem_post(&s->b), 0);
  }
  CHECK_EQ(shmh_sem_timedwait(&s->a, 10.0), 0);
  reap_ok(pid);
  CHECK_EQ(s->counter, 2L * TURNS);
  munmap(s, sizeof *s);
}

static void t_named(void) {
  char name[64], path[96];
  snprintf(name, sizeof name, "/shmht%d_sync_named", (int)getpid());
  snprintf(path, sizeof path, "/dev/shm/sem.%s", name + 1);
  sem_unlink(name);
  struct shmh_sem_open_opts o = {.create = 1, .excl = 1, .mode = 0640, .value = 2};
  sem_t *s1, *s2;
  int created;
  CHECK_EQ(shmh_sem_open(&s1, name, &o, &created), 0);
  CHECK_EQ(created, 1);
  struct stat st;
  CHECK(stat(path, &st) == 0);
  CHECK_EQ(st.st_mode & 07777, 0640);
  CHECK_EQ(shmh_sem_open(&s2, name, &o, &created), -EEXIST);
  o.excl = 0;
  CHECK_EQ(shmh_sem_open(&s2, name, &o, &created), 0);
  CHECK_EQ(created, 0);
  /* Two mappings of one semaphore: a unit taken through one is gone through the other. */
  CHECK_EQ(shmh_sem_trywait(s2), 0);
  int v;
  CHECK_EQ(shmh_sem_getvalue(s1, &v), 0);
  CHECK_EQ(v, 1);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    sem_t *c;
    struct shmh_sem_open_opts oo = {0};
    int cr;
    if (shmh_sem_open(&c, name, &oo, &cr) != 0) _exit(2);
    if (shmh_sem_post(c) != 0) _exit(3);
    _exit(0);
  }
  reap_ok(pid);
  CHECK_EQ(shmh_sem_getvalue(s1, &v), 0);
  CHECK_EQ(v, 2);
  CHECK_EQ(shmh_sem_close(s2), 0);
  CHECK_EQ(shmh_sem_close(s1), 0);
  CHECK_EQ(shmh_sem_unlink(name), 0);
  CHECK_EQ(shmh_sem_unlink(name), -ENOENT);
  struct shmh_sem_open_opts none = {0};
  CHECK_EQ(shmh_sem_open(&s1, name, &none, &created), -ENOENT);
  CHECK_EQ(shmh_sem_open(&s1, "noslash", &o, &created), -EINVAL);
  CHECK_EQ(shmh_sem_open(&s1, "/a/b", &o, &created), -EINVAL);
  CHECK(s1 == NULL);
}

/* ------------------------------------------------------------ futexes */

/* A word in MAP_SHARED memory made before fork: the kernel keys a shared futex by the page
 * behind it, so parent and child meet on the same futex. */
static uint32_t *word_new(void) {
  uint32_t *w = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  CHECK(w != MAP_FAILED);
  memset(w, 0, 4096);
  return w;
}

static void t_futex_checks(void) {
  uint32_t *w = word_new();
  w[0] = 5;
  /* The word is not the value expected: the kernel refuses to sleep. */
  CHECK_EQ(shmh_futex_wait(&w[0], 4, 1.0), -EAGAIN);
  double t0 = now();
  CHECK_EQ(shmh_futex_wait(&w[0], 5, 0.1), -ETIMEDOUT);
  double dt = now() - t0;
  CHECK(dt >= 0.095 && dt < 2.0);
  CHECK_EQ(shmh_futex_wait(&w[0], 5, 0), -ETIMEDOUT);
  CHECK_EQ(shmh_futex_wake(&w[0], 1), 0); /* nobody waits */
  CHECK_EQ(shmh_futex_wake(&w[0], -1), -EINVAL);
  /* The kernel wants a 4-byte aligned word. */
  CHECK_EQ(shmh_futex_wait((uint32_t *)((char *)w + 2), 0, 0.01), -EINVAL);
  CHECK_EQ(shmh_futex_wake((uint32_t *)((char *)w + 2), 1), -EINVAL);
  munmap(w, 4096);
  /* An unmapped word is EFAULT, not a crash. */
  CHECK_EQ(shmh_futex_wait(w, 0, 0.01), -EFAULT);
}

/* A word past the end of a truncated object: EFAULT from the kernel, where a load from this
 * process would have raised SIGBUS. */
static void t_futex_truncated(void) {
  int fd = (int)syscall(SYS_memfd_create, "futex_trunc", 0);
  CHECK(fd >= 0);
  CHECK(ftruncate(fd, 8192) == 0);
  uint32_t *w = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  CHECK(w != MAP_FAILED);
  uint32_t *far = w + 4096 / 4;
  *far = 7;
  CHECK_EQ(shmh_futex_wait(far, 7, 0.01), -ETIMEDOUT);
  CHECK(ftruncate(fd, 4096) == 0);
  CHECK_EQ(shmh_futex_wait(far, 7, 0.01), -EFAULT);
  CHECK_EQ(shmh_futex_wait(far, 0, 0.01), -EFAULT);
  munmap(w, 8192);
  close(fd);
}

/* A child sleeps on the word; the parent wakes it without changing the word, so the child's
 * 0 can only come from that wake; then a change-and-wake the way a protocol does it. */
static void t_futex_fork(void) {
  uint32_t *w = word_new();
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    __atomic_store_n(&w[1], 1, __ATOMIC_SEQ_CST); /* about to sleep */
    int rc = shmh_futex_wait(&w[0], 0, 10.0);
    if (rc != 0) _exit(2);
    /* Second round: wait until the parent stores 1 and wakes. */
    while (__atomic_load_n(&w[0], __ATOMIC_SEQ_CST) == 0) {
      rc = shmh_futex_wait(&w[0], 0, 10.0);
      if (rc != 0 && rc != -EAGAIN && rc != -EINTR) _exit(3);
    }
    _exit(0);
  }
  while (__atomic_load_n(&w[1], __ATOMIC_SEQ_CST) == 0) usleep(1000);
  /* The child may not be asleep yet: a wake then reaches nobody (0), so try again. */
  double until = now() + 10;
  int woken = 0;
  while (woken == 0 && now() < until) {
    woken = shmh_futex_wake(&w[0], 1);
    CHECK(woken >= 0);
    if (woken == 0) usleep(1000);
  }
  CHECK_EQ(woken, 1);
  usleep(20000);
  __atomic_store_n(&w[0], 1, __ATOMIC_SEQ_CST);
  CHECK(shmh_futex_wake(&w[0], INT_MAX) >= 0);
  reap_ok(pid);
  munmap(w, 4096);
}

/* Three sleepers in three processes: a wake of n wakes at most n of them, and all of them in
 * the end; each sleeper's wait returns 0. */
static void t_futex_wake_n(void) {
  uint32_t *w = word_new();
  enum { PROCS = 3 };
  pid_t pids[PROCS];
  for (int i = 0; i < PROCS; i++) {
    pids[i] = fork();
    CHECK(pids[i] >= 0);
    if (pids[i] == 0) _exit(shmh_futex_wait(&w[0], 0, 20.0) == 0 ? 0 : 2);
  }
  double until = now() + 15;
  int total = 0;
  while (total < PROCS && now() < until) {
    int n = shmh_futex_wake(&w[0], 2);
    CHECK(n >= 0 && n <= 2);
    total += n;
    if (n == 0) usleep(1000);
  }
  CHECK_EQ(total, PROCS);
  for (int i = 0; i < PROCS; i++) reap_ok(pids[i]);
  munmap(w, 4096);
}

int main(void) {
  return RUN(t_mutex_basics, t_owner_died, t_owner_died_while_waiting, t_mutex_no_lost_updates,
             t_timeouts, t_sem_values, t_sem_alternate, t_named, t_futex_checks,
             t_futex_truncated, t_futex_fork, t_futex_wake_n);
}
