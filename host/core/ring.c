#include "ring.h"
#include "sync.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <limits.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The header as it lies in the segment. Head and tail are written by different processes
 * thousands of times a second, so each has a cache line of its own: sharing one would make
 * both cores fight over it on every message. The wait words are written only when a side goes
 * to sleep, so reading them on every message keeps their line shared and cheap. */
struct ring_hdr {
  uint32_t magic;
  uint32_t version;
  uint64_t capacity;
  int32_t pid[2];         /* per role: 0 not yet arrived, > 0 its pid, < 0 it left */
  unsigned char pad0[40];
  uint64_t head;
  unsigned char pad1[56];
  uint64_t tail;
  unsigned char pad2[56];
  uint32_t waiting[2];    /* per role: set by that side just before it sleeps */
  uint32_t seq[2];        /* per role: the futex word that side sleeps on */
  unsigned char pad3[48];
};

_Static_assert(sizeof(struct ring_hdr) == SHMH_RING_HEADER, "ring header size");
_Static_assert(offsetof(struct ring_hdr, head) == 64, "head on its own cache line");
_Static_assert(offsetof(struct ring_hdr, tail) == 128, "tail on its own cache line");
_Static_assert(offsetof(struct ring_hdr, waiting) == 192, "wait words on their own line");

enum { REC_MSG = 1, REC_SKIP = 2 };

#define LOAD(p, o) __atomic_load_n((p), __ATOMIC_##o)
#define STORE(p, v, o) __atomic_store_n((p), (v), __ATOMIC_##o)

static inline struct ring_hdr *hdr_of(const shmh_ring *r) { return r->base; }

/* Wakes the side `role` when it said it is going to sleep. The full fence orders our publish
 * (head or tail) before the read of its flag; the sleeper orders its flag before its recheck
 * the same way, so at least one of us sees the other (the Dekker pattern): either it sees our
 * publish and does not sleep, or we see its flag and wake it. */
static void notify(struct ring_hdr *h, int role) {
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  if (LOAD(&h->waiting[role], RELAXED)) {
    STORE(&h->waiting[role], 0, RELAXED);
    __atomic_fetch_add(&h->seq[role], 1, __ATOMIC_SEQ_CST);
    shmh_futex_wake(&h->seq[role], INT_MAX);
  }
}

static int valid_capacity(uint64_t cap) {
  return cap >= 8 && cap % 8 == 0 && cap <= SHMH_RING_MAX_CAPACITY;
}

int shmh_ring_create(shmh_ring *r, void *mem, size_t region, uint64_t capacity) {
  if (r == NULL || mem == NULL || (uintptr_t)mem % 8 != 0 || !valid_capacity(capacity))
    return -EINVAL;
  if (region < SHMH_RING_HEADER || region - SHMH_RING_HEADER < capacity) return -ENOSPC;
  struct ring_hdr *h = mem;
  /* The magic goes last, with release order: a peer that sees it sees a whole header. */
  STORE(&h->magic, 0, RELAXED);
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  memset((char *)h + sizeof h->magic, 0, sizeof *h - sizeof h->magic);
  h->version = SHMH_RING_VERSION;
  h->capacity = capacity;
  STORE(&h->magic, SHMH_RING_MAGIC, RELEASE);
  memset(r, 0, sizeof *r);
  r->base = mem;
  r->data = (unsigned char *)mem + SHMH_RING_HEADER;
  r->capacity = capacity;
  return 0;
}

int shmh_ring_attach(shmh_ring *r, void *mem, size_t region) {
  if (r == NULL || mem == NULL || (uintptr_t)mem % 8 != 0 || region < SHMH_RING_HEADER)
    return -EINVAL;
  struct ring_hdr *h = mem;
  if (LOAD(&h->magic, ACQUIRE) != SHMH_RING_MAGIC) return -EINVAL;
  if (LOAD(&h->version, RELAXED) != SHMH_RING_VERSION) return -EPROTO;
  uint64_t cap = LOAD(&h->capacity, RELAXED);
  if (!valid_capacity(cap) || cap > region - SHMH_RING_HEADER) return -EBADMSG;
  uint64_t head = LOAD(&h->head, ACQUIRE), tail = LOAD(&h->tail, ACQUIRE);
  if ((head | tail) % 8 != 0 || head - tail > cap) return -EBADMSG;
  memset(r, 0, sizeof *r);
  r->base = mem;
  r->data = (unsigned char *)mem + SHMH_RING_HEADER;
  /* The capacity is read once and kept: a peer that changes it later cannot make us index
   * past what we validated against the region. */
  r->capacity = cap;
  return 0;
}

void shmh_ring_claim(shmh_ring *r, enum shmh_ring_role role) {
  STORE(&hdr_of(r)->pid[role], (int32_t)getpid(), RELEASE);
  r->claimed[role] = 1;
}

static inline void write_record(unsigned char *at, uint32_t len, uint32_t kind) {
  uint32_t rec[2] = {len, kind};
  memcpy(at, rec, sizeof rec);
}

int shmh_ring_push(shmh_ring *r, const void *msg, size_t len) {
  struct ring_hdr *h = hdr_of(r);
  uint64_t cap = r->capacity;
  if (!r->claimed[SHMH_RING_PRODUCER]) shmh_ring_claim(r, SHMH_RING_PRODUCER);
  if (len > cap || shmh_ring_cost(len) > cap) return -EMSGSIZE;
  uint64_t need = shmh_ring_cost(len);
  uint64_t head = LOAD(&h->head, RELAXED), tail = LOAD(&h->tail, ACQUIRE);
  if ((head | tail) % 8 != 0 || head - tail > cap) return -EBADMSG;
  uint64_t off = head % cap, to_end = cap - off, room = cap - (head - tail);
  if (need > to_end) {
    /* The record would cross the end: cover the rest with a skip record and start over at
     * offset 0. The skip is published on its own, so even when the message does not fit yet,
     * the consumer can release the skip and the room at the start becomes usable. */
    if (room < to_end) return -EAGAIN;
    write_record(r->data + off, 0, REC_SKIP);
    head += to_end;
    room -= to_end;
    STORE(&h->head, head, RELEASE);
    notify(h, SHMH_RING_CONSUMER);
    off = 0;
  }
  if (need > room) return -EAGAIN;
  write_record(r->data + off, (uint32_t)len, REC_MSG);
  if (len) memcpy(r->data + off + SHMH_RING_RECORD, msg, len);
  STORE(&h->head, head + need, RELEASE);
  notify(h, SHMH_RING_CONSUMER);
  return 0;
}

int shmh_ring_peek(shmh_ring *r, const void **msg, size_t *len) {
  struct ring_hdr *h = hdr_of(r);
  uint64_t cap = r->capacity;
  if (!r->claimed[SHMH_RING_CONSUMER]) shmh_ring_claim(r, SHMH_RING_CONSUMER);
  r->peeked = 0;
  uint64_t head = LOAD(&h->head, ACQUIRE), tail = LOAD(&h->tail, RELAXED);
  for (;;) {
    if ((head | tail) % 8 != 0 || head - tail > cap) return -EBADMSG;
    uint64_t avail = head - tail;
    if (avail == 0) return -EAGAIN;
    uint64_t off = tail % cap;
    uint32_t rec[2];
    memcpy(rec, r->data + off, sizeof rec);
    if (rec[1] == REC_SKIP) {
      uint64_t skip = cap - off;
      if (avail < skip) return -EBADMSG;
      tail += skip;
      STORE(&h->tail, tail, RELEASE);
      notify(h, SHMH_RING_PRODUCER);
      continue;
    }
    /* off <= cap - 8, so cap - off - 8 cannot wrap; the length is checked against the space
     * to the end and against what was published before anything is read through it. */
    if (rec[1] != REC_MSG || rec[0] > cap - off - SHMH_RING_RECORD) return -EBADMSG;
    uint64_t need = shmh_ring_cost(rec[0]);
    if (need > avail) return -EBADMSG;
    *msg = r->data + off + SHMH_RING_RECORD;
    *len = rec[0];
    r->peeked = need;
    return 0;
  }
}

void shmh_ring_release(shmh_ring *r) {
  if (r->peeked == 0) return;
  struct ring_hdr *h = hdr_of(r);
  uint64_t tail = LOAD(&h->tail, RELAXED);
  STORE(&h->tail, tail + r->peeked, RELEASE);
  r->peeked = 0;
  notify(h, SHMH_RING_PRODUCER);
}

int shmh_ring_pop(shmh_ring *r, void *buf, size_t size, size_t *len) {
  const void *msg;
  int rc = shmh_ring_peek(r, &msg, len);
  if (rc < 0) return rc;
  if (*len > size) {
    r->peeked = 0;
    return -EMSGSIZE;
  }
  if (*len) memcpy(buf, msg, *len);
  shmh_ring_release(r);
  return 0;
}

int shmh_ring_ready(shmh_ring *r, enum shmh_ring_role role, size_t len) {
  if (role == SHMH_RING_CONSUMER) {
    /* Peeking releases any skip record on the way, which the producer may be waiting for. */
    const void *msg;
    size_t n;
    int rc = shmh_ring_peek(r, &msg, &n);
    r->peeked = 0;
    return rc == 0 ? 1 : rc == -EAGAIN ? 0 : rc;
  }
  struct ring_hdr *h = hdr_of(r);
  uint64_t cap = r->capacity;
  if (len > cap || shmh_ring_cost(len) > cap) return -EMSGSIZE;
  uint64_t need = shmh_ring_cost(len);
  uint64_t head = LOAD(&h->head, RELAXED), tail = LOAD(&h->tail, ACQUIRE);
  if ((head | tail) % 8 != 0 || head - tail > cap) return -EBADMSG;
  uint64_t to_end = cap - head % cap, room = cap - (head - tail);
  /* When the message must wrap, progress is possible as soon as the skip record fits: the
   * next push publishes it, and the consumer releasing it frees the start of the area. */
  return need <= to_end ? need <= room : room >= to_end;
}

uint64_t shmh_ring_used(const shmh_ring *r) {
  struct ring_hdr *h = hdr_of(r);
  uint64_t used = LOAD(&h->head, ACQUIRE) - LOAD(&h->tail, ACQUIRE);
  return used > r->capacity ? r->capacity : used;
}

void shmh_ring_leave(shmh_ring *r, enum shmh_ring_role role) {
  if (!r->claimed[role]) return;
  struct ring_hdr *h = hdr_of(r);
  int32_t me = (int32_t)getpid();
  /* Only our own pid is replaced: a successor that claimed the role since keeps it. */
  __atomic_compare_exchange_n(&h->pid[role], &me, -me, 0, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED);
  r->claimed[role] = 0;
  shmh_ring_kick(r, !role);
}

/* Whether `pid` is a zombie or dead: kill(pid, 0) succeeds on a zombie, and a peer that is
 * our own child stays one until we reap it. */
static int zombie(int32_t pid) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  /* The state follows the last ')' since the command name may hold anything. */
  const char *p = strrchr(buf, ')');
  return p != NULL && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
}

static int peer_state(const shmh_ring *r, enum shmh_ring_role role, int probe) {
  int32_t pid = LOAD(&hdr_of(r)->pid[!role], ACQUIRE);
  if (pid == 0) return 1;
  if (pid < 0) return 0;
  if (!probe) return 1;
  /* kill with signal 0 checks existence only; EPERM means it exists under another uid. */
  if (kill(pid, 0) != 0 && errno == ESRCH) return -ESRCH;
  return zombie(pid) ? -ESRCH : 1;
}

int32_t shmh_ring_pid(const shmh_ring *r, enum shmh_ring_role role) {
  return LOAD(&hdr_of(r)->pid[role], ACQUIRE);
}

int shmh_ring_peer(const shmh_ring *r, enum shmh_ring_role role, int probe) {
  return peer_state(r, role, probe);
}

int shmh_ring_prepare(shmh_ring *r, enum shmh_ring_role role, size_t len,
                      uint32_t **word, uint32_t *value) {
  struct ring_hdr *h = hdr_of(r);
  if (!r->claimed[role]) shmh_ring_claim(r, role);
  /* The futex value is read before the flag is raised and the state rechecked: a wake that
   * comes after this point changes the word, so the sleep that follows returns at once. */
  uint32_t v = LOAD(&h->seq[role], ACQUIRE);
  STORE(&h->waiting[role], 1, RELAXED);
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  int rc = shmh_ring_ready(r, role, len);
  if (rc != 0) {
    STORE(&h->waiting[role], 0, RELAXED);
    return rc > 0 ? 1 : rc;
  }
  *word = &h->seq[role];
  *value = v;
  return 0;
}

int shmh_ring_sleep(uint32_t *word, uint32_t value, int ms) {
  int rc = shmh_futex_wait(word, value, ms / 1000.0);
  return rc == -EAGAIN ? 0 : rc; /* the word had changed already: a wake came */
}

void shmh_ring_kick(shmh_ring *r, enum shmh_ring_role role) {
  struct ring_hdr *h = hdr_of(r);
  __atomic_fetch_add(&h->seq[role], 1, __ATOMIC_SEQ_CST);
  shmh_futex_wake(&h->seq[role], INT_MAX);
}

static long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int shmh_ring_wait(shmh_ring *r, enum shmh_ring_role role, size_t len, int spin,
                   int slice_ms, long timeout_ms) {
  for (int i = 0; i < spin; i++) {
    int rc = shmh_ring_ready(r, role, len);
    if (rc != 0) return rc > 0 ? 0 : rc;
    shmh_cpu_relax();
  }
  long deadline = timeout_ms >= 0 ? now_ms() + timeout_ms : 0;
  if (slice_ms <= 0) slice_ms = 100;
  int probe = 0;
  for (;;) {
    uint32_t *word, value;
    int rc = shmh_ring_prepare(r, role, len, &word, &value);
    if (rc != 0) return rc > 0 ? 0 : rc;
    /* A peer that left says so in the header (free to read); whether it died costs system
     * calls, so that is asked only after a slice passed without a wake. */
    int peer = peer_state(r, role, probe);
    int ms = slice_ms;
    if (timeout_ms >= 0) {
      long left = deadline - now_ms();
      if (left <= 0) rc = -ETIMEDOUT;
      else if (left < ms) ms = (int)left;
    }
    if (peer <= 0 || rc == -ETIMEDOUT) {
      STORE(&hdr_of(r)->waiting[role], 0, RELAXED);
      return rc == -ETIMEDOUT ? rc : peer == 0 ? -EPIPE : -ESRCH;
    }
    rc = shmh_ring_sleep(word, value, ms);
    if (rc < 0 && rc != -ETIMEDOUT && rc != -EINTR) return rc;
    probe = rc == -ETIMEDOUT;
  }
}
