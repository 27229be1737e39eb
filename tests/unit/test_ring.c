/*
 * The core ring: formats and validation, records of every length across the wrap, the full
 * and empty edges, corrupt headers and records refused without a read outside the region
 * (ASan watches the exact-size buffers), wake-ups across processes, a peer that dies, and two
 * processes streaming millions of messages with a checksum.
 */
#define CHECK_DEADLINE 240
#include "check.h"

#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>
#include <time.h>

#include "ring.h"

/* Offsets of the header fields the tests corrupt on purpose (ring.c fixes them). */
enum { OFF_VERSION = 4, OFF_CAPACITY = 8, OFF_PID = 16, OFF_HEAD = 64, OFF_TAIL = 128,
       OFF_WAITING = 192, OFF_SEQ = 200 };

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A buffer of exactly `n` bytes from malloc, so ASan flags any access past it. */
static void *exact(size_t n) {
  void *p = aligned_alloc(8, (n + 7) & ~(size_t)7);
  CHECK(p != NULL);
  memset(p, 0, n);
  return p;
}

static void *shared(size_t n) {
  void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  CHECK(p != MAP_FAILED);
  return p;
}

static void fill(unsigned char *buf, size_t len, unsigned seed) {
  for (size_t i = 0; i < len; i++) buf[i] = (unsigned char)(seed * 131u + i * 7u + 1u);
}

static void poke64(void *mem, size_t off, uint64_t v) { memcpy((char *)mem + off, &v, 8); }

static void t_create_attach(void) {
  size_t region = SHMH_RING_HEADER + 512;
  void *mem = exact(region);
  shmh_ring r, a;
  CHECK_EQ(shmh_ring_create(&r, mem, region, 0), -EINVAL);
  CHECK_EQ(shmh_ring_create(&r, mem, region, 12), -EINVAL);
  CHECK_EQ(shmh_ring_create(&r, mem, region, 520), -ENOSPC);
  CHECK_EQ(shmh_ring_create(&r, (char *)mem + 4, region - 4, 64), -EINVAL);
  CHECK_EQ(shmh_ring_attach(&a, mem, region), -EINVAL); /* zeroes: no ring there */
  CHECK_EQ(shmh_ring_create(&r, mem, region, 512), 0);
  CHECK_EQ(shmh_ring_footprint(512), region);
  CHECK_EQ(shmh_ring_attach(&a, mem, region), 0);
  CHECK_EQ(a.capacity, 512);
  CHECK_EQ(shmh_ring_attach(&a, mem, region - 8), -EBADMSG); /* capacity past the region */
  CHECK_EQ(shmh_ring_attach(&a, mem, 100), -EINVAL);
  /* A message pushed through one handle comes out of the other. */
  CHECK_EQ(shmh_ring_push(&r, "hello", 5), 0);
  char buf[16];
  size_t len;
  CHECK_EQ(shmh_ring_pop(&a, buf, sizeof buf, &len), 0);
  CHECK_EQ(len, 5);
  CHECK(memcmp(buf, "hello", 5) == 0);
  free(mem);
}

static void t_corrupt_header(void) {
  size_t region = SHMH_RING_HEADER + 256;
  void *mem = exact(region);
  shmh_ring r, a;
  CHECK_EQ(shmh_ring_create(&r, mem, region, 256), 0);
  uint32_t v = 99;
  memcpy((char *)mem + OFF_VERSION, &v, 4);
  CHECK_EQ(shmh_ring_attach(&a, mem, region), -EPROTO);
  CHECK_EQ(shmh_ring_create(&r, mem, region, 256), 0);
  poke64(mem, OFF_CAPACITY, 250);
  CHECK_EQ(shmh_ring_attach(&a, mem, region), -EBADMSG);
  poke64(mem, OFF_CAPACITY, (uint64_t)1 << 40);
  CHECK_EQ(shmh_ring_attach(&a, mem, region), -EBADMSG);
  poke64(mem, OFF_CAPACITY, 256);
  poke64(mem, OFF_HEAD, 1000); /* more in use than the capacity */
  CHECK_EQ(shmh_ring_attach(&a, mem, region), -EBADMSG);
  poke64(mem, OFF_HEAD, 12); /* misaligned */
  CHECK_EQ(shmh_ring_attach(&a, mem, region), -EBADMSG);
  poke64(mem, OFF_HEAD, 0);
  poke64(mem, OFF_TAIL, 8); /* tail ahead of head */
  CHECK_EQ(shmh_ring_attach(&a, mem, region), -EBADMSG);
  /* A live handle meets the same corruption on its next operation. */
  char buf[8];
  size_t len;
  CHECK_EQ(shmh_ring_pop(&r, buf, sizeof buf, &len), -EBADMSG);
  CHECK_EQ(shmh_ring_push(&r, "x", 1), -EBADMSG);
  free(mem);
}

static void t_corrupt_records(void) {
  size_t region = SHMH_RING_HEADER + 64;
  void *mem = exact(region);
  unsigned char *data = (unsigned char *)mem + SHMH_RING_HEADER;
  shmh_ring r;
  const void *msg;
  size_t len;
  uint32_t rec[2];
  CHECK_EQ(shmh_ring_create(&r, mem, region, 64), 0);
  CHECK_EQ(shmh_ring_push(&r, "abcdefgh", 8), 0);
  /* A length past the end of the data area. */
  rec[0] = 1000000; rec[1] = 1;
  memcpy(data, rec, 8);
  CHECK_EQ(shmh_ring_peek(&r, &msg, &len), -EBADMSG);
  /* A length within the area but past what was published. */
  rec[0] = 40;
  memcpy(data, rec, 8);
  CHECK_EQ(shmh_ring_peek(&r, &msg, &len), -EBADMSG);
  /* An unknown record kind. */
  rec[0] = 8; rec[1] = 77;
  memcpy(data, rec, 8);
  CHECK_EQ(shmh_ring_peek(&r, &msg, &len), -EBADMSG);
  /* A skip record that claims more than was published. */
  rec[0] = 0; rec[1] = 2;
  memcpy(data, rec, 8);
  CHECK_EQ(shmh_ring_peek(&r, &msg, &len), -EBADMSG);
  /* Random garbage everywhere: every call returns, none reads outside the buffer. */
  srand(7);
  for (int i = 0; i < 20000; i++) {
    CHECK_EQ(shmh_ring_create(&r, mem, region, 64), 0);
    for (size_t k = 64; k < region; k++) ((unsigned char *)mem)[k] = (unsigned char)rand();
    if (rand() % 2) poke64(mem, OFF_HEAD, (uint64_t)(rand() % 9) * 8);
    if (rand() % 2) poke64(mem, OFF_TAIL, 0);
    int rc = shmh_ring_peek(&r, &msg, &len);
    CHECK(rc == 0 || rc == -EAGAIN || rc == -EBADMSG);
    if (rc == 0) CHECK((const unsigned char *)msg + len <= data + 64);
    rc = shmh_ring_push(&r, "0123456789", 10);
    CHECK(rc == 0 || rc == -EAGAIN || rc == -EBADMSG);
  }
  free(mem);
}

/* Messages of every length 0..300, many times around a ring whose capacity is not a power of
 * two, so the wrap falls at every offset; both one at a time and in bursts until full. */
static void t_every_length(void) {
  uint64_t cap = 1000;
  size_t region = shmh_ring_footprint(cap);
  void *mem = exact(region);
  shmh_ring r;
  CHECK_EQ(shmh_ring_create(&r, mem, region, cap), 0);
  unsigned char in[400], out[400];
  for (int round = 0; round < 5; round++) {
    for (size_t n = 0; n <= 300; n++) {
      fill(in, n, (unsigned)(n + round));
      CHECK_EQ(shmh_ring_push(&r, in, n), 0);
      size_t len = 9999;
      CHECK_EQ(shmh_ring_pop(&r, out, sizeof out, &len), 0);
      CHECK_EQ(len, n);
      CHECK(memcmp(in, out, n) == 0);
      CHECK_EQ(shmh_ring_used(&r), 0);
    }
  }
  /* Bursts: push until full, then drain, checking order and contents. */
  size_t next_in = 0, next_out = 0;
  for (int burst = 0; burst < 200; burst++) {
    int pushed = 0;
    for (;;) {
      size_t n = (next_in * 37) % 301;
      fill(in, n, (unsigned)next_in);
      int rc = shmh_ring_push(&r, in, n);
      if (rc == -EAGAIN) break;
      CHECK_EQ(rc, 0);
      next_in++;
      pushed++;
    }
    CHECK(pushed > 0);
    CHECK(shmh_ring_used(&r) <= cap);
    size_t len;
    int rc;
    while ((rc = shmh_ring_pop(&r, out, sizeof out, &len)) == 0) {
      size_t n = (next_out * 37) % 301;
      CHECK_EQ(len, n);
      fill(in, n, (unsigned)next_out);
      CHECK(memcmp(in, out, n) == 0);
      next_out++;
    }
    CHECK_EQ(rc, -EAGAIN);
    CHECK_EQ(next_in, next_out);
  }
  free(mem);
}

static void t_full_empty(void) {
  size_t region = shmh_ring_footprint(64);
  void *mem = exact(region);
  shmh_ring r;
  unsigned char buf[64] = {0};
  size_t len;
  CHECK_EQ(shmh_ring_create(&r, mem, region, 64), 0);
  CHECK_EQ(shmh_ring_pop(&r, buf, sizeof buf, &len), -EAGAIN);
  CHECK_EQ(shmh_ring_ready(&r, SHMH_RING_CONSUMER, 0), 0);
  CHECK_EQ(shmh_ring_cost(0), 8);
  CHECK_EQ(shmh_ring_cost(1), 16);
  CHECK_EQ(shmh_ring_cost(56), 64);
  CHECK_EQ(shmh_ring_push(&r, buf, 57), -EMSGSIZE); /* 8 + 57 rounds to 72 > 64 */
  CHECK_EQ(shmh_ring_push(&r, buf, 1000), -EMSGSIZE);
  CHECK_EQ(shmh_ring_push(&r, buf, (size_t)-1), -EMSGSIZE);
  CHECK_EQ(shmh_ring_push(&r, buf, 56), 0); /* exactly the capacity */
  CHECK_EQ(shmh_ring_used(&r), 64);
  CHECK_EQ(shmh_ring_push(&r, buf, 0), -EAGAIN);
  CHECK_EQ(shmh_ring_ready(&r, SHMH_RING_PRODUCER, 0), 0);
  CHECK_EQ(shmh_ring_ready(&r, SHMH_RING_CONSUMER, 0), 1);
  CHECK_EQ(shmh_ring_pop(&r, buf, 10, &len), -EMSGSIZE); /* buffer too small: not consumed */
  CHECK_EQ(len, 56);
  CHECK_EQ(shmh_ring_pop(&r, buf, sizeof buf, &len), 0);
  CHECK_EQ(len, 56);
  /* Eight empty messages fill it exactly. */
  for (int i = 0; i < 8; i++) CHECK_EQ(shmh_ring_push(&r, "", 0), 0);
  CHECK_EQ(shmh_ring_push(&r, "", 0), -EAGAIN);
  for (int i = 0; i < 8; i++) {
    CHECK_EQ(shmh_ring_pop(&r, buf, sizeof buf, &len), 0);
    CHECK_EQ(len, 0);
  }
  CHECK_EQ(shmh_ring_pop(&r, buf, sizeof buf, &len), -EAGAIN);
  free(mem);
}

/* A message as large as the ring still goes through when the head is mid-area: the skip
 * record goes first, the consumer releases it, and the message lands at offset 0. */
static void t_wrap_whole(void) {
  size_t region = shmh_ring_footprint(64);
  void *mem = exact(region);
  shmh_ring r;
  unsigned char in[56], out[64];
  size_t len;
  fill(in, sizeof in, 3);
  CHECK_EQ(shmh_ring_create(&r, mem, region, 64), 0);
  CHECK_EQ(shmh_ring_push(&r, in, 20), 0); /* costs 32 */
  CHECK_EQ(shmh_ring_pop(&r, out, sizeof out, &len), 0);
  CHECK_EQ(shmh_ring_ready(&r, SHMH_RING_PRODUCER, 56), 1);
  CHECK_EQ(shmh_ring_push(&r, in, 56), -EAGAIN); /* published the skip, no room yet */
  CHECK_EQ(shmh_ring_used(&r), 32);
  CHECK_EQ(shmh_ring_ready(&r, SHMH_RING_PRODUCER, 56), 0);
  CHECK_EQ(shmh_ring_pop(&r, out, sizeof out, &len), -EAGAIN); /* releases the skip */
  CHECK_EQ(shmh_ring_used(&r), 0);
  CHECK_EQ(shmh_ring_push(&r, in, 56), 0);
  CHECK_EQ(shmh_ring_pop(&r, out, sizeof out, &len), 0);
  CHECK_EQ(len, 56);
  CHECK(memcmp(in, out, 56) == 0);
  free(mem);
}

static uint32_t peek32(const void *mem, size_t off) {
  uint32_t v;
  memcpy(&v, (const char *)mem + off, 4);
  return v;
}

/* The wake-up protocol: a side is signalled only after it announced that it goes to sleep,
 * once, so a busy stream makes no futex call per message. The futex word of a side changes
 * exactly when it is woken; its flag is cleared by the wake. */
static void t_wake_only_sleepers(void) {
  size_t region = shmh_ring_footprint(256);
  void *mem = exact(region);
  shmh_ring r;
  char buf[64];
  size_t len;
  CHECK_EQ(shmh_ring_create(&r, mem, region, 256), 0);
  for (int i = 0; i < 1000; i++) {
    CHECK_EQ(shmh_ring_push(&r, "busy", 4), 0);
    CHECK_EQ(shmh_ring_pop(&r, buf, sizeof buf, &len), 0);
  }
  CHECK_EQ(peek32(mem, OFF_SEQ), 0);     /* the producer was never woken */
  CHECK_EQ(peek32(mem, OFF_SEQ + 4), 0); /* nor the consumer */
  /* The consumer announces its sleep on an empty ring: the next push wakes it, once. */
  uint32_t *word, value;
  CHECK_EQ(shmh_ring_prepare(&r, SHMH_RING_CONSUMER, 0, &word, &value), 0);
  CHECK(word == (uint32_t *)((char *)mem + OFF_SEQ + 4));
  CHECK_EQ(peek32(mem, OFF_WAITING + 4), 1);
  CHECK_EQ(shmh_ring_push(&r, "a", 1), 0);
  CHECK_EQ(peek32(mem, OFF_WAITING + 4), 0);
  CHECK_EQ(peek32(mem, OFF_SEQ + 4), value + 1);
  /* The sleep that was about to start returns at once: the word moved. */
  CHECK_EQ(shmh_ring_sleep(word, value, 5000), 0);
  CHECK_EQ(shmh_ring_push(&r, "b", 1), 0);
  CHECK_EQ(peek32(mem, OFF_SEQ + 4), value + 1);
  /* With a message waiting, preparing finds it ready and does not announce a sleep. */
  CHECK_EQ(shmh_ring_prepare(&r, SHMH_RING_CONSUMER, 0, &word, &value), 1);
  CHECK_EQ(peek32(mem, OFF_WAITING + 4), 0);
  /* The producer side: full ring, announce, one pop wakes it. */
  while (shmh_ring_push(&r, "0123456789", 10) == 0) {}
  CHECK_EQ(shmh_ring_prepare(&r, SHMH_RING_PRODUCER, 10, &word, &value), 0);
  CHECK_EQ(peek32(mem, OFF_WAITING), 1);
  CHECK_EQ(shmh_ring_pop(&r, buf, sizeof buf, &len), 0);
  CHECK_EQ(peek32(mem, OFF_WAITING), 0);
  CHECK_EQ(peek32(mem, OFF_SEQ), value + 1);
  CHECK_EQ(shmh_ring_pop(&r, buf, sizeof buf, &len), 0);
  CHECK_EQ(peek32(mem, OFF_SEQ), value + 1);
  free(mem);
}

/* The consumer sleeps with a slice far longer than the test allows: only a futex wake from
 * the producer process can end its wait in time. */
static void t_wakeup(void) {
  size_t region = shmh_ring_footprint(4096);
  void *mem = shared(region);
  shmh_ring r;
  CHECK_EQ(shmh_ring_create(&r, mem, region, 4096), 0);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    shmh_ring p;
    if (shmh_ring_attach(&p, mem, region) != 0) _exit(3);
    usleep(200000);
    _exit(shmh_ring_push(&p, "wake", 4) == 0 ? 0 : 4);
  }
  double t0 = now();
  CHECK_EQ(shmh_ring_wait(&r, SHMH_RING_CONSUMER, 0, 0, 10000, 20000), 0);
  double dt = now() - t0;
  CHECK(dt > 0.1 && dt < 2.0);
  char buf[8];
  size_t len;
  CHECK_EQ(shmh_ring_pop(&r, buf, sizeof buf, &len), 0);
  CHECK_EQ(len, 4);
  int st;
  CHECK_EQ(waitpid(pid, &st, 0), pid);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  /* The producer left when it exited without leave(), so it is reported dead, not gone. */
  CHECK_EQ(shmh_ring_peer(&r, SHMH_RING_CONSUMER, 1), -ESRCH);
  munmap(mem, region);
}

/* A producer killed while the consumer waits: the wait ends with -ESRCH within a second. A
 * producer that leaves properly ends it with -EPIPE. A full ring whose consumer died ends the
 * producer's wait the same way. */
static void t_peer_death(void) {
  size_t region = shmh_ring_footprint(64);
  void *mem = shared(region);
  shmh_ring r;
  CHECK_EQ(shmh_ring_create(&r, mem, region, 64), 0);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    shmh_ring p;
    if (shmh_ring_attach(&p, mem, region) != 0) _exit(3);
    shmh_ring_claim(&p, SHMH_RING_PRODUCER);
    pause();
    _exit(0);
  }
  CHECK_EQ(shmh_ring_wait(&r, SHMH_RING_CONSUMER, 0, 0, 100, 300), -ETIMEDOUT);
  kill(pid, SIGKILL);
  double t0 = now();
  CHECK_EQ(shmh_ring_wait(&r, SHMH_RING_CONSUMER, 0, 100, 100, 5000), -ESRCH);
  CHECK(now() - t0 < 1.0);
  waitpid(pid, NULL, 0);

  pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    shmh_ring p;
    if (shmh_ring_attach(&p, mem, region) != 0) _exit(3);
    shmh_ring_claim(&p, SHMH_RING_PRODUCER);
    usleep(100000);
    shmh_ring_leave(&p, SHMH_RING_PRODUCER);
    pause();
    _exit(0);
  }
  usleep(20000);
  t0 = now();
  CHECK_EQ(shmh_ring_wait(&r, SHMH_RING_CONSUMER, 0, 0, 5000, 5000), -EPIPE);
  CHECK(now() - t0 < 1.0);
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);

  /* The other direction: a full ring and a consumer that dies. */
  CHECK_EQ(shmh_ring_create(&r, mem, region, 64), 0);
  CHECK_EQ(shmh_ring_push(&r, "0123456789012345678901234567890123456789012345678901234", 55), 0);
  pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    shmh_ring c;
    if (shmh_ring_attach(&c, mem, region) != 0) _exit(3);
    shmh_ring_claim(&c, SHMH_RING_CONSUMER);
    pause();
    _exit(0);
  }
  usleep(50000);
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  t0 = now();
  CHECK_EQ(shmh_ring_wait(&r, SHMH_RING_PRODUCER, 8, 0, 100, 5000), -ESRCH);
  CHECK(now() - t0 < 1.0);
  munmap(mem, region);
}

static uint64_t mix(uint64_t h, const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

/* The message number i: its length and bytes follow from i, so the consumer can check each
 * one as well as the checksum of the whole stream. */
static size_t make_msg(uint64_t i, unsigned char *buf) {
  size_t len = (size_t)((i * 2654435761u) % 41);
  for (size_t k = 0; k < len; k++) buf[k] = (unsigned char)(i >> ((k % 8) * 8)) ^ (unsigned char)k;
  return len;
}

static uint64_t stream_count(void) {
  const char *env = getenv("SHMH_RING_MESSAGES");
  if (env && *env) return strtoull(env, NULL, 10);
  /* Ten million take about 3 s, and about 5 s under ASan: no reduction is needed. */
  return 10000000;
}

struct result { uint64_t count, sum, bad; };

/* Two processes, ten million messages of 0..40 bytes through a 64 KiB ring. */
static void t_two_process_stream(void) {
  uint64_t n = stream_count();
  uint64_t cap = 65536;
  size_t region = shmh_ring_footprint(cap);
  unsigned char *mem = shared(region + 4096);
  struct result *res = (struct result *)(mem + region + 64);
  shmh_ring r;
  CHECK_EQ(shmh_ring_create(&r, mem, region, cap), 0);
  double t0 = now();
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    shmh_ring c;
    if (shmh_ring_attach(&c, mem, region) != 0) _exit(3);
    uint64_t sum = 0xcbf29ce484222325ull, got = 0, bad = 0;
    unsigned char expect[64];
    while (got < n) {
      const void *msg;
      size_t len;
      int rc = shmh_ring_peek(&c, &msg, &len);
      if (rc == -EAGAIN) {
        rc = shmh_ring_wait(&c, SHMH_RING_CONSUMER, 0, 200, 100, 30000);
        if (rc < 0) _exit(5);
        continue;
      }
      if (rc < 0) _exit(6);
      size_t want = make_msg(got, expect);
      if (len != want || memcmp(msg, expect, len) != 0) bad++;
      sum = mix(sum, msg, len);
      shmh_ring_release(&c);
      got++;
    }
    res->count = got;
    res->sum = sum;
    res->bad = bad;
    _exit(0);
  }
  uint64_t sum = 0xcbf29ce484222325ull;
  unsigned char buf[64];
  for (uint64_t i = 0; i < n; i++) {
    size_t len = make_msg(i, buf);
    sum = mix(sum, buf, len);
    int rc;
    while ((rc = shmh_ring_push(&r, buf, len)) == -EAGAIN)
      CHECK_EQ(shmh_ring_wait(&r, SHMH_RING_PRODUCER, len, 200, 100, 30000), 0);
    CHECK_EQ(rc, 0);
  }
  int st;
  CHECK_EQ(waitpid(pid, &st, 0), pid);
  CHECK(WIFEXITED(st));
  CHECK_EQ(WEXITSTATUS(st), 0);
  CHECK_EQ(res->count, n);
  CHECK_EQ(res->bad, 0);
  CHECK(res->sum == sum);
  printf("     %llu messages in %.2f s\n", (unsigned long long)n, now() - t0);
  munmap(mem, region + 4096);
}

int main(void) {
  return RUN(t_create_attach, t_corrupt_header, t_corrupt_records, t_every_length, t_full_empty,
             t_wrap_whole, t_wake_only_sleepers, t_wakeup, t_peer_death, t_two_process_stream);
}
