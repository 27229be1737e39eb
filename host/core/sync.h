/*
 * Sync objects that live in shared memory: process-shared mutexes (robust and error-checking
 * by default) and POSIX semaphores, unnamed (inside a segment) or named (sem_open).
 *
 * Every function returns 0 or a negative errno, with one exception spelled out below: a lock
 * that succeeds because the previous holder died returns SHMH_OWNER_DIED (a positive value).
 * Times are relative, in seconds; waits measure them on CLOCK_MONOTONIC, so a change of the
 * wall clock neither shortens nor stretches a timeout.
 */
#ifndef SHMHOST_SYNC_H
#define SHMHOST_SYNC_H

#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <sys/types.h>

/* The lock was taken from a holder that died with it (EOWNERDEAD). The caller holds the lock
 * and the mutex has already been made consistent again; the data it guards may be half
 * updated and is the caller's to repair. */
#define SHMH_OWNER_DIED 1

enum shmh_mutex_type {
  SHMH_MUTEX_ERRORCHECK = 0, /* relock and foreign unlock fail instead of hanging */
  SHMH_MUTEX_NORMAL,
  SHMH_MUTEX_RECURSIVE
};

struct shmh_mutex_opts {
  int robust;                /* PTHREAD_MUTEX_ROBUST: a dead holder does not deadlock others */
  enum shmh_mutex_type type;
};

/* The defaults: robust and error-checking. */
void shmh_mutex_opts_default(struct shmh_mutex_opts *o);

/* Initializes a process-shared mutex at m (memory shared with the other processes). */
int shmh_mutex_init(pthread_mutex_t *m, const struct shmh_mutex_opts *o);

/* Destroys it (-EBUSY while it is held). */
int shmh_mutex_destroy(pthread_mutex_t *m);

/* Blocks until the lock is taken: 0, SHMH_OWNER_DIED, or -errno (-EDEADLK when this thread
 * holds it already, whatever the mutex type, so a normal mutex cannot hang its own holder;
 * -ENOTRECOVERABLE when a holder died and nobody made it consistent). */
int shmh_mutex_lock(pthread_mutex_t *m);

/* As shmh_mutex_lock, giving up with -ETIMEDOUT after `seconds`. */
int shmh_mutex_timedlock(pthread_mutex_t *m, double seconds);

/* Takes the lock only if it is free: 0, SHMH_OWNER_DIED, -EBUSY (held by anyone, this thread
 * included), or -errno. */
int shmh_mutex_trylock(pthread_mutex_t *m);

/* 0, or -EPERM when an error-checking or robust mutex is not held by this thread. */
int shmh_mutex_unlock(pthread_mutex_t *m);

/* pthread_mutex_consistent: for a holder that got EOWNERDEAD through another path. */
int shmh_mutex_consistent(pthread_mutex_t *m);

/* 1 when the calling thread holds the mutex (glibc keeps the owner's thread id in it). */
int shmh_mutex_held_by_me(const pthread_mutex_t *m);

/* Unnamed semaphores: sem_init with pshared = 1, at an address in shared memory. */
int shmh_sem_init(sem_t *s, unsigned int value);
int shmh_sem_destroy(sem_t *s);

/* 0, or -EOVERFLOW when the value would pass SEM_VALUE_MAX. */
int shmh_sem_post(sem_t *s);

/* Waits; an interrupting signal does not end the wait. */
int shmh_sem_wait(sem_t *s);

/* Waits at most `seconds`: 0 or -ETIMEDOUT. */
int shmh_sem_timedwait(sem_t *s, double seconds);

/* 0, or -EAGAIN when the value is zero. */
int shmh_sem_trywait(sem_t *s);

int shmh_sem_getvalue(sem_t *s, int *value);

/* Named semaphores. `name` is "/x". With `create`, O_CREAT (and O_EXCL with `excl`);
 * `*created` tells whether this call made it. A created semaphore gets exactly `mode`, not
 * mode minus the umask. */
struct shmh_sem_open_opts {
  int create;
  int excl;
  mode_t mode;
  unsigned int value;
};
int shmh_sem_open(sem_t **out, const char *name, const struct shmh_sem_open_opts *o,
                  int *created);
int shmh_sem_close(sem_t *s);
int shmh_sem_unlink(const char *name);

/* Futexes on a 32-bit word in shared memory, shared between processes: FUTEX_PRIVATE_FLAG is
 * left out, because a private futex is keyed by the address in one process and the waker here
 * is another process mapping the same page. `word` must be 4-byte aligned (else -EINVAL).
 *
 * shmh_futex_wait sleeps while *word == expected, at most `timeout` seconds (negative: no
 * limit), measured on CLOCK_MONOTONIC. Returns 0 when woken, -EAGAIN when the word was not
 * `expected` when the kernel looked, -ETIMEDOUT, -EINTR (a signal handler ran; the caller
 * decides whether to sleep again), or -EFAULT (the word is not mapped, or lies past the end of
 * a truncated object: the kernel reports that instead of raising SIGBUS). Only the kernel
 * touches the word, so a thread that cannot know whether the page is still mapped may call it.
 * As with futex(2), a wake reaches only waiters already asleep: change the word, then wake. */
int shmh_futex_wait(uint32_t *word, uint32_t expected, double timeout);

/* Wakes at most n (>= 0; INT_MAX for all) waiters on `word`: the count woken, or -errno. */
int shmh_futex_wake(uint32_t *word, int n);

/* A pause inside a spin-wait: it tells the core the loop spins, which saves power and lets a
 * hyperthread sibling (perhaps the peer we wait for) run. */
static inline void shmh_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

#endif
