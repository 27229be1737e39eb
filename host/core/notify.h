/*
 * eventfd: a kernel counter that one process adds to and another reads and resets, the
 * lightest way to wake a peer that shares memory with us. Descriptors made here are
 * non-blocking (the loop watches them) and close-on-exec.
 */
#ifndef SHMHOST_NOTIFY_H
#define SHMHOST_NOTIFY_H

#include <stdint.h>

/* The largest value the counter can hold; a write that would pass it fails with EAGAIN. */
#define SHMH_EVENTFD_MAX UINT64_C(0xfffffffffffffffe)

/* Creates an eventfd with the initial count `init` (semaphore mode when `semaphore` is set:
 * each read takes 1 instead of the whole count). Returns the descriptor or a negative errno. */
int shmh_eventfd_open(unsigned int init, int semaphore);

/* Adds n (1 .. SHMH_EVENTFD_MAX) to the counter. Returns 0, -EAGAIN when the counter would
 * overflow (the write would block), -EINVAL for n == 0 or too large, or another -errno. */
int shmh_eventfd_notify(int fd, uint64_t n);

/* Reads the counter without waiting: 0 and *count on success, -EAGAIN when it is zero. */
int shmh_eventfd_try(int fd, uint64_t *count);

/* 1 when fd is an eventfd, 0 when it is something else, a negative errno when it is not an
 * open descriptor. */
int shmh_fd_is_eventfd(int fd);

#endif
