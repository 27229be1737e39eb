/*
 * Process-shared mutexes and semaphores. pthread functions return the error number instead of
 * setting errno, semaphore functions set errno; both end up here as a negative errno.
 */
#include "sync.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* The absolute CLOCK_MONOTONIC time `seconds` from now. */
static struct timespec deadline_after(double seconds) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  if (!(seconds > 0)) return ts;
  if (seconds > 1e9) seconds = 1e9; /* about 31 years: "forever" without overflowing tv_sec */
  /* Truncation of a positive value is floor; the core does not link libm. */
  time_t whole = (time_t)seconds;
  ts.tv_sec += whole;
  ts.tv_nsec += (long)((seconds - (double)whole) * 1e9);
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  return ts;
}

/* ------------------------------------------------------------ mutexes */

void shmh_mutex_opts_default(struct shmh_mutex_opts *o) {
  o->robust = 1;
  o->type = SHMH_MUTEX_ERRORCHECK;
}

int shmh_mutex_init(pthread_mutex_t *m, const struct shmh_mutex_opts *o) {
  struct shmh_mutex_opts def;
  if (o == NULL) {
    shmh_mutex_opts_default(&def);
    o = &def;
  }
  int kind;
  switch (o->type) {
  case SHMH_MUTEX_ERRORCHECK: kind = PTHREAD_MUTEX_ERRORCHECK; break;
  case SHMH_MUTEX_NORMAL: kind = PTHREAD_MUTEX_NORMAL; break;
  case SHMH_MUTEX_RECURSIVE: kind = PTHREAD_MUTEX_RECURSIVE; break;
  default: return -EINVAL;
  }
  pthread_mutexattr_t a;
  int rc = pthread_mutexattr_init(&a);
  if (rc != 0) return -rc;
  /* Without PROCESS_SHARED glibc may use a private futex, which the kernel keys by address
   * in this process only: a peer mapping the same page would never be woken. */
  rc = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
  if (rc == 0) rc = pthread_mutexattr_settype(&a, kind);
  if (rc == 0 && o->robust) rc = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
  if (rc == 0) rc = pthread_mutex_init(m, &a);
  pthread_mutexattr_destroy(&a);
  return -rc;
}

int shmh_mutex_destroy(pthread_mutex_t *m) { return -pthread_mutex_destroy(m); }

/* EOWNERDEAD means the lock is ours and the previous owner died holding it. Marking it
 * consistent at once means a caller that forgets cannot turn it into ENOTRECOVERABLE for every
 * process; the caller is still told, so it can repair the data. */
static int after_lock(pthread_mutex_t *m, int rc) {
  if (rc == 0) return 0;
  if (rc == EOWNERDEAD) {
    int c = pthread_mutex_consistent(m);
    if (c != 0) {
      pthread_mutex_unlock(m);
      return -c;
    }
    return SHMH_OWNER_DIED;
  }
  return -rc;
}

int shmh_mutex_held_by_me(const pthread_mutex_t *m) {
  /* glibc stores the holder's thread id in __owner (with the robust futex protocol's flag
   * bits above FUTEX_TID_MASK); that is how it answers EDEADLK itself. */
  unsigned int owner = (unsigned int)__atomic_load_n(&m->__data.__owner, __ATOMIC_RELAXED);
  return (owner & 0x3fffffffu) == (unsigned int)gettid();
}

/* A normal mutex relocked by its holder would hang forever, and this process has one thread
 * for all its tasks: answer EDEADLK for every type that cannot nest. */
static int relock_refused(const pthread_mutex_t *m) {
  return shmh_mutex_held_by_me(m) && (m->__data.__kind & 3) != PTHREAD_MUTEX_RECURSIVE;
}

int shmh_mutex_lock(pthread_mutex_t *m) {
  if (relock_refused(m)) return -EDEADLK;
  return after_lock(m, pthread_mutex_lock(m));
}

int shmh_mutex_timedlock(pthread_mutex_t *m, double seconds) {
  if (relock_refused(m)) return -EDEADLK;
  struct timespec ts = deadline_after(seconds);
  return after_lock(m, pthread_mutex_clocklock(m, CLOCK_MONOTONIC, &ts));
}

int shmh_mutex_trylock(pthread_mutex_t *m) {
  int rc = pthread_mutex_trylock(m);
  /* A robust error-checking mutex answers its own holder EDEADLK; for a try that is "busy". */
  return after_lock(m, rc == EDEADLK ? EBUSY : rc);
}

int shmh_mutex_unlock(pthread_mutex_t *m) { return -pthread_mutex_unlock(m); }

int shmh_mutex_consistent(pthread_mutex_t *m) { return -pthread_mutex_consistent(m); }

/* ------------------------------------------------------------ semaphores */

int shmh_sem_init(sem_t *s, unsigned int value) {
  if (value > (unsigned int)SEM_VALUE_MAX) return -EINVAL;
  return sem_init(s, 1, value) == 0 ? 0 : -errno;
}

int shmh_sem_destroy(sem_t *s) { return sem_destroy(s) == 0 ? 0 : -errno; }

int shmh_sem_post(sem_t *s) { return sem_post(s) == 0 ? 0 : -errno; }

int shmh_sem_wait(sem_t *s) {
  while (sem_wait(s) != 0) {
    if (errno != EINTR) return -errno;
  }
  return 0;
}

int shmh_sem_timedwait(sem_t *s, double seconds) {
  struct timespec ts = deadline_after(seconds);
  while (sem_clockwait(s, CLOCK_MONOTONIC, &ts) != 0) {
    if (errno != EINTR) return -errno;
  }
  return 0;
}

int shmh_sem_trywait(sem_t *s) {
  while (sem_trywait(s) != 0) {
    if (errno != EINTR) return -errno;
  }
  return 0;
}

int shmh_sem_getvalue(sem_t *s, int *value) { return sem_getvalue(s, value) == 0 ? 0 : -errno; }

int shmh_sem_open(sem_t **out, const char *name, const struct shmh_sem_open_opts *o,
                  int *created) {
  *out = NULL;
  *created = 0;
  if (name == NULL || name[0] != '/' || strchr(name + 1, '/') != NULL || name[1] == '\0')
    return -EINVAL;
  if (o->value > (unsigned int)SEM_VALUE_MAX) return -EINVAL;
  /* O_CREAT alone cannot say whether it made the semaphore, and only a semaphore this process
   * made is removed at exit. Try an exclusive create first, then a plain open; a peer that
   * removes the name in between sends us round again. */
  for (int tries = 0; tries < 100; tries++) {
    sem_t *s;
    if (o->create) {
      s = sem_open(name, O_CREAT | O_EXCL, o->mode, o->value);
      if (s != SEM_FAILED) {
        *created = 1;
        /* sem_open applies the umask; the contract is the mode asked for. The semaphore is
         * the file /dev/shm/sem.NAME on glibc. */
        char path[PATH_MAX];
        snprintf(path, sizeof path, "/dev/shm/sem.%s", name + 1);
        chmod(path, o->mode);
        *out = s;
        return 0;
      }
      if (errno != EEXIST || o->excl) return -errno;
    }
    s = sem_open(name, 0);
    if (s != SEM_FAILED) {
      *out = s;
      return 0;
    }
    if (errno != ENOENT || !o->create) return -errno;
  }
  return -EAGAIN;
}

int shmh_sem_close(sem_t *s) { return sem_close(s) == 0 ? 0 : -errno; }

int shmh_sem_unlink(const char *name) { return sem_unlink(name) == 0 ? 0 : -errno; }

/* ------------------------------------------------------------ futexes */

int shmh_futex_wait(uint32_t *word, uint32_t expected, double timeout) {
  /* FUTEX_WAIT takes a relative timeout and measures it on CLOCK_MONOTONIC. */
  struct timespec ts, *tp = NULL;
  if (timeout >= 0) {
    if (timeout > 1e9) timeout = 1e9; /* about 31 years: no overflow of tv_sec */
    ts.tv_sec = (time_t)timeout;
    ts.tv_nsec = (long)((timeout - (double)ts.tv_sec) * 1e9);
    if (ts.tv_nsec >= 1000000000L) ts.tv_nsec = 999999999L;
    tp = &ts;
  }
  if (syscall(SYS_futex, word, FUTEX_WAIT, expected, tp, NULL, 0) == 0) return 0;
  return -errno;
}

int shmh_futex_wake(uint32_t *word, int n) {
  if (n < 0) return -EINVAL;
  long rc = syscall(SYS_futex, word, FUTEX_WAKE, n, NULL, NULL, 0);
  return rc < 0 ? -errno : (int)rc;
}
