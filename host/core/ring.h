/*
 * The shared-memory ring: a single-producer single-consumer queue of variable-length messages
 * that lives in a region of a segment, so two processes (or a process and itself) exchange
 * messages through memory alone.
 *
 * Layout of the region (offsets from its start, which must be 8-byte aligned):
 *
 *     0    header line: magic, version, capacity, producer and consumer pids
 *     64   head: bytes the producer has ever published (its own cache line)
 *     128  tail: bytes the consumer has ever released (its own cache line)
 *     192  wait words: the "I am going to sleep" flags and the futex words of both sides
 *     256  data area, `capacity` bytes (a multiple of 8)
 *
 * A record is an 8-byte header (u32 length, u32 kind) followed by the payload, rounded up to
 * 8 bytes. A record never wraps: when the space left before the end of the data area is too
 * small, the producer first publishes a skip record that covers the rest of the area. Head and
 * tail only grow; their difference is the bytes in use and their value modulo the capacity is
 * where the next record starts.
 *
 * Wake-ups: a side that finds nothing to do announces in its flag that it is going to sleep,
 * checks again, and sleeps on its futex word; the other side makes the futex call only when
 * it sees the flag. A busy stream therefore costs no system call per message. Sleeps are
 * bounded slices, so a dead peer (its pid is in the header) is noticed.
 *
 * Everything read from the region may have been written by a hostile or broken peer: every
 * length and index is validated before it is used, and a corrupt ring is -EBADMSG, never an
 * access outside the region.
 *
 * Functions return 0 or a negative errno and never print or exit.
 */
#ifndef SHMHOST_RING_H
#define SHMHOST_RING_H

#include <stddef.h>
#include <stdint.h>

#define SHMH_RING_MAGIC   0x474e5253u /* "SRNG" in little-endian byte order */
#define SHMH_RING_VERSION 1u
#define SHMH_RING_HEADER  256u        /* bytes before the data area */
#define SHMH_RING_RECORD  8u          /* bytes of a record header */
/* The largest capacity accepted: record lengths are 32-bit. */
#define SHMH_RING_MAX_CAPACITY ((uint64_t)1 << 32)

enum shmh_ring_role { SHMH_RING_PRODUCER = 0, SHMH_RING_CONSUMER = 1 };

/* A process's handle on a ring: plain memory, no resources, nothing to free. */
typedef struct shmh_ring {
  void *base;             /* the header, in the segment */
  unsigned char *data;    /* the data area */
  uint64_t capacity;
  uint64_t peeked;        /* bytes of the record returned by the last peek, 0 when none */
  int claimed[2];         /* whether this handle has written its pid for each role */
} shmh_ring;

/* Bytes a ring of `capacity` occupies in its segment. */
static inline uint64_t shmh_ring_footprint(uint64_t capacity) {
  return SHMH_RING_HEADER + capacity;
}

/* Bytes one message of `len` costs in the data area. */
static inline uint64_t shmh_ring_cost(uint64_t len) {
  return (SHMH_RING_RECORD + len + 7u) & ~(uint64_t)7u;
}

/* Formats a ring of `capacity` bytes (a multiple of 8, at least 8) at `mem`, which is 8-byte
 * aligned and `region` bytes long. -EINVAL for a bad capacity or alignment, -ENOSPC when the
 * region is too small. */
int shmh_ring_create(shmh_ring *r, void *mem, size_t region, uint64_t capacity);

/* Attaches to a ring another process formatted. -EINVAL when the region holds no ring (bad
 * magic, misaligned, smaller than a header), -EPROTO for another version, -EBADMSG when the
 * header is inconsistent (capacity, indices). */
int shmh_ring_attach(shmh_ring *r, void *mem, size_t region);

/* Appends a message. -EAGAIN when there is no room now, -EMSGSIZE when it can never fit,
 * -EBADMSG when the ring is corrupt. Wakes a sleeping consumer. */
int shmh_ring_push(shmh_ring *r, const void *msg, size_t len);

/* Returns the next message in place (valid until shmh_ring_release) without consuming it.
 * -EAGAIN when empty, -EBADMSG when corrupt. */
int shmh_ring_peek(shmh_ring *r, const void **msg, size_t *len);

/* Releases the message returned by the last peek; wakes a producer waiting for room. */
void shmh_ring_release(shmh_ring *r);

/* Copies the next message into buf (at most `size` bytes) and releases it. -EAGAIN when
 * empty, -EMSGSIZE when buf is too small (nothing consumed; *len says what is needed),
 * -EBADMSG when corrupt. */
int shmh_ring_pop(shmh_ring *r, void *buf, size_t size, size_t *len);

/* Whether a side could proceed now: a message is waiting (consumer), or a message of `len`
 * would fit (producer). 1 yes, 0 no, negative errno when corrupt. */
int shmh_ring_ready(shmh_ring *r, enum shmh_ring_role role, size_t len);

/* Bytes in use, counting record headers and skips. */
uint64_t shmh_ring_used(const shmh_ring *r);

/* Writes this process's pid as the side `role` (done by the first push or peek too). */
void shmh_ring_claim(shmh_ring *r, enum shmh_ring_role role);

/* Marks the side `role` as gone (its pid becomes negative) and wakes the other side. */
void shmh_ring_leave(shmh_ring *r, enum shmh_ring_role role);

/* The pid recorded for the side `role`: 0 when no process has taken it yet, > 0 the pid of
 * the process that did, < 0 minus the pid of one that left. */
int32_t shmh_ring_pid(const shmh_ring *r, enum shmh_ring_role role);

/* The state of the peer of `role`: 1 alive or not yet arrived, 0 it left the ring,
 * -ESRCH it died. Without `probe` only the header is read (no system call), so a peer that
 * died without leaving still counts as alive. */
int shmh_ring_peer(const shmh_ring *r, enum shmh_ring_role role, int probe);

/* Sleeping, in two halves so the wait itself can happen on another thread.
 *
 * shmh_ring_prepare announces that `role` is going to sleep until it is ready (a message, or
 * room for `len` bytes) and checks again. It returns 1 when the side is ready after all
 * (nothing to wait for), 0 when the caller should sleep with shmh_ring_sleep on *word with
 * *value, or a negative errno when the ring is corrupt. */
int shmh_ring_prepare(shmh_ring *r, enum shmh_ring_role role, size_t len,
                      uint32_t **word, uint32_t *value);

/* Sleeps on a futex word of a ring until it changes from `value`, it is woken, or `ms`
 * milliseconds pass. Touches no memory but the futex call's own (an unmapped word is
 * -EFAULT, not a crash), so it is safe on a thread that cannot know whether the segment is
 * still mapped. 0 woken or changed, -ETIMEDOUT, -EINTR, -EFAULT. */
int shmh_ring_sleep(uint32_t *word, uint32_t value, int ms);

/* Wakes every sleeper on the futex word of `role` (used to interrupt a sleeping thread of our
 * own): the word changes, so a sleep about to start returns at once too. */
void shmh_ring_kick(shmh_ring *r, enum shmh_ring_role role);

/* Waits in the calling thread until `role` is ready: spins `spin` rounds, then sleeps in
 * slices of `slice_ms` until `timeout_ms` passes (negative: no limit). 0 ready, -ETIMEDOUT,
 * -EPIPE when the peer left, -ESRCH when it died, -EBADMSG. */
int shmh_ring_wait(shmh_ring *r, enum shmh_ring_role role, size_t len, int spin,
                   int slice_ms, long timeout_ms);

#endif
