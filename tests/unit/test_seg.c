/*
 * The segment core: every kind (POSIX, System V, memfd, adopted descriptors), bounds, resize,
 * ENOSPC at creation on a full /dev/shm, and the SIGBUS guard against a peer that truncates.
 *
 * Under ASan these run with ASAN_OPTIONS=handle_sigbus=0 (tests/tests.cmake sets it): ASan
 * otherwise installs its own SIGBUS handler, which reports the guarded fault as a crash
 * before ours can repair it, and the guard tests would fail for the sanitizer's sake.
 */
#include "check.h"
#include "seg.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/shm.h>
#include <sys/stat.h>

static char name_buf[64];

/* A POSIX name unique to this process and case. */
static const char *uname_(const char *what) {
  snprintf(name_buf, sizeof name_buf, "/shmh_unit_%s_%d", what, (int)getpid());
  return name_buf;
}

static struct shmh_seg_opts create_opts(size_t size) {
  struct shmh_seg_opts o = {.create = 1, .excl = 1, .size = size, .mode = 0600};
  return o;
}

static void t_posix_create_open(void) {
  const char *name = uname_("posix");
  shmh_seg a, b;
  struct shmh_seg_opts o = create_opts(10000);
  CHECK_EQ(shmh_seg_open_posix(&a, name, &o), 0);
  CHECK_EQ(a.kind, SHMH_SEG_POSIX);
  CHECK(a.created);
  CHECK_EQ(a.size, 10000);
  CHECK(a.addr != NULL);
  CHECK_STR(a.name, name);
  /* excl on an existing name fails and names the call. */
  CHECK_EQ(shmh_seg_open_posix(&b, name, &o), -EEXIST);
  CHECK_STR(b.fail_call, "shm_open");
  /* create without excl opens it, and says it did not create it; size comes from fstat. */
  o.excl = 0;
  o.size = 5;
  CHECK_EQ(shmh_seg_open_posix(&b, name, &o), 0);
  CHECK(!b.created);
  CHECK_EQ(b.size, 10000);
  memcpy((char *)a.addr + 9990, "hello", 5);
  CHECK(memcmp((char *)b.addr + 9990, "hello", 5) == 0);
  struct shmh_seg_stat st;
  CHECK_EQ(shmh_seg_stat(&b, &st), 0);
  CHECK_EQ(st.size, 10000);
  CHECK_EQ(st.mode, 0600);
  CHECK_EQ(st.uid, getuid());
  shmh_seg_close(&b);
  CHECK_EQ(b.kind, SHMH_SEG_NONE);
  shmh_seg_close(&b); /* idempotent */
  CHECK_EQ(shmh_seg_unlink(&a), 0);
  CHECK_EQ(shmh_seg_unlink(&a), -ENOENT);
  /* The mapping outlives the name. */
  CHECK(memcmp((char *)a.addr + 9990, "hello", 5) == 0);
  shmh_seg_close(&a);
}

static void t_posix_errors_and_modes(void) {
  const char *name = uname_("modes");
  shmh_seg s, r;
  struct shmh_seg_opts o = {0};
  CHECK_EQ(shmh_seg_open_posix(&s, name, &o), -ENOENT);
  CHECK_STR(s.fail_call, "shm_open");
  /* The mode is applied exactly, whatever the umask. */
  umask(077);
  o = create_opts(4096);
  o.mode = 0640;
  CHECK_EQ(shmh_seg_open_posix(&s, name, &o), 0);
  struct stat st;
  char path[128];
  snprintf(path, sizeof path, "/dev/shm%s", name);
  CHECK_EQ(stat(path, &st), 0);
  CHECK_EQ(st.st_mode & 07777, 0640);
  /* Read-only: mapped PROT_READ, and the fd is read-only too. */
  struct shmh_seg_opts ro = {.readonly = 1};
  CHECK_EQ(shmh_seg_open_posix(&r, name, &ro), 0);
  CHECK(r.readonly);
  CHECK_EQ(fcntl(r.fd, F_GETFL) & O_ACCMODE, O_RDONLY);
  CHECK(shmh_seg_resize(&r, 8192) < 0);
  shmh_seg_close(&r);
  /* truncate: an existing object is emptied and sized again. */
  memset(s.addr, 0xab, 4096);
  struct shmh_seg_opts tr = {.truncate = 1, .size = 100};
  CHECK_EQ(shmh_seg_open_posix(&r, name, &tr), 0);
  CHECK_EQ(r.size, 100);
  CHECK_EQ(((unsigned char *)r.addr)[0], 0);
  shmh_seg_close(&r);
  /* A name too long for the structure is refused, never copied past its end. */
  char longname[NAME_MAX + 40];
  memset(longname, 'x', sizeof longname - 1);
  longname[0] = '/';
  longname[sizeof longname - 1] = '\0';
  CHECK_EQ(shmh_seg_open_posix(&r, longname, &o), -ENAMETOOLONG);
  CHECK_EQ(shmh_seg_unlink(&s), 0);
  shmh_seg_close(&s);
}

static void t_sysv(void) {
  char keyfile[64];
  snprintf(keyfile, sizeof keyfile, "/tmp/shmh_unit_key_%d", (int)getpid());
  int kfd = open(keyfile, O_CREAT | O_WRONLY, 0600);
  CHECK(kfd >= 0);
  close(kfd);
  key_t key;
  CHECK_EQ(shmh_seg_ftok(keyfile, 'X', &key), 0);
  CHECK_EQ(key, ftok(keyfile, 'X'));
  CHECK_EQ(shmh_seg_ftok(keyfile, 0, &key), -EINVAL);
  CHECK_EQ(shmh_seg_ftok("/nonexistent/shmh", 'X', &key), -ENOENT);
  CHECK_EQ(shmh_seg_ftok(keyfile, 'X', &key), 0);
  unlink(keyfile);

  shmh_seg a, b, c;
  struct shmh_seg_opts o = create_opts(1024);
  /* A key made from the pid, so that parallel runs cannot collide. */
  key = (key_t)(0x53000000 | (getpid() & 0xffffff));
  CHECK_EQ(shmh_seg_open_sysv(&a, key, &o), 0);
  CHECK_EQ(a.kind, SHMH_SEG_SYSV);
  CHECK(a.created);
  CHECK(a.shmid >= 0);
  CHECK_EQ(a.key, key);
  CHECK_EQ(a.size, 1024);
  CHECK_EQ(a.fd, -1);
  CHECK_EQ(shmh_seg_open_sysv(&b, key, &o), -EEXIST);
  CHECK_STR(b.fail_call, "shmget");
  struct shmh_seg_opts open = {0};
  CHECK_EQ(shmh_seg_open_sysv(&b, key, &open), 0);
  CHECK(!b.created);
  CHECK_EQ(b.shmid, a.shmid);
  CHECK_EQ(shmh_seg_attach_sysv(&c, a.shmid, 1), 0);
  CHECK(c.readonly);
  CHECK_EQ(c.key, key);
  strcpy(a.addr, "sysv text");
  CHECK_STR(c.addr, "sysv text");
  struct shmh_seg_stat st;
  CHECK_EQ(shmh_seg_stat(&c, &st), 0);
  CHECK_EQ(st.nattch, 3);
  CHECK_EQ(st.cpid, getpid());
  CHECK_EQ(st.mode, 0600);
  CHECK_EQ(st.key, key);
  CHECK_EQ(st.id, a.shmid);
  CHECK_EQ(shmh_seg_resize(&a, 4096), -EOPNOTSUPP);
  shmh_seg_close(&c);
  shmh_seg_close(&b);
  CHECK_EQ(shmh_seg_stat(&a, &st), 0);
  CHECK_EQ(st.nattch, 1);
  /* Removal marks it; it lives on while attached. */
  CHECK_EQ(shmh_seg_unlink(&a), 0);
  CHECK_EQ(shmh_seg_stat(&a, &st), 0);
  CHECK(st.removed);
  CHECK_EQ(shmh_seg_open_sysv(&b, key, &open), -ENOENT);
  int id = a.shmid;
  shmh_seg_close(&a);
  struct shmid_ds ds;
  CHECK(shmctl(id, IPC_STAT, &ds) < 0);
  /* Attaching an id that does not exist fails with the call named. */
  CHECK(shmh_seg_attach_sysv(&c, id, 0) < 0);
  CHECK_STR(c.fail_call, "shmat");
  /* IPC_PRIVATE always creates. */
  CHECK_EQ(shmh_seg_open_sysv(&a, IPC_PRIVATE, &o), 0);
  CHECK(a.created);
  CHECK_EQ(shmh_seg_unlink(&a), 0);
  shmh_seg_close(&a);
}

static void t_memfd_seal_resize(void) {
  shmh_seg m;
  struct shmh_seg_opts o = create_opts(8192);
  o.seal = 1;
  CHECK_EQ(shmh_seg_open_memfd(&m, "unit-sealed", &o), 0);
  CHECK_EQ(m.kind, SHMH_SEG_MEMFD);
  CHECK(!m.guarded); /* sealed against shrinking: nothing to guard */
  CHECK_EQ(shmh_seg_resize(&m, 4096), -EPERM);
  CHECK_STR(m.fail_call, "ftruncate");
  CHECK_EQ(shmh_seg_unlink(&m), -EINVAL);
  shmh_seg_close(&m);

  o.seal = 0;
  CHECK_EQ(shmh_seg_open_memfd(&m, "unit-open", &o), 0);
  CHECK(m.guarded);
  memcpy(m.addr, "start", 5);
  /* Block the address space right after the mapping so that growing must move it. */
  void *after = (char *)m.addr + 8192;
  void *blk = mmap(after, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
                   -1, 0);
  void *before = m.addr;
  CHECK_EQ(shmh_seg_resize(&m, 1 << 20), 0);
  CHECK_EQ(m.size, 1 << 20);
  if (blk == after) {
    CHECK(m.addr != before);
    CHECK_EQ(m.nold, 1);
    /* The old mapping still works and shows the same pages. */
    memcpy((char *)m.addr + 100, "moved", 5);
    CHECK(memcmp((char *)before + 100, "moved", 5) == 0);
    munmap(blk, 4096);
  }
  CHECK(memcmp(m.addr, "start", 5) == 0);
  ((char *)m.addr)[(1 << 20) - 1] = 'z';
  struct shmh_seg_stat st;
  CHECK_EQ(shmh_seg_stat(&m, &st), 0);
  CHECK_EQ(st.size, 1 << 20);
  CHECK_EQ(shmh_seg_resize(&m, 100), 0);
  CHECK_EQ(m.size, 100);
  CHECK(memcmp(m.addr, "start", 5) == 0);
  CHECK_EQ(shmh_seg_resize(&m, 0), 0);
  CHECK(m.addr == NULL);
  CHECK_EQ(shmh_seg_resize(&m, 4096), 0);
  CHECK(m.addr != NULL);
  /* Truncating to zero discarded the pages: the object grows back zero-filled. */
  CHECK_EQ(((char *)m.addr)[0], 0);
  shmh_seg_close(&m);
}

static void t_adopt(void) {
  shmh_seg m, a;
  struct shmh_seg_opts o = create_opts(4096);
  CHECK_EQ(shmh_seg_open_memfd(&m, "unit-adopt", &o), 0);
  int fd = dup(m.fd);
  CHECK_EQ(shmh_seg_fd_kind(fd), SHMH_SEG_MEMFD);
  CHECK_EQ(shmh_seg_adopt_fd(&a, fd), 0);
  CHECK_EQ(a.kind, SHMH_SEG_MEMFD);
  CHECK_STR(a.name, "unit-adopt");
  CHECK_EQ(a.size, 4096);
  CHECK(!a.created);
  strcpy(m.addr, "shared");
  CHECK_STR(a.addr, "shared");
  shmh_seg_close(&a);
  shmh_seg_close(&m);

  const char *name = uname_("adopt");
  CHECK_EQ(shmh_seg_open_posix(&m, name, &o), 0);
  fd = shm_open(name, O_RDONLY, 0);
  CHECK(fd >= 0);
  CHECK_EQ(shmh_seg_fd_kind(fd), SHMH_SEG_POSIX);
  CHECK_EQ(shmh_seg_adopt_fd(&a, fd), 0);
  CHECK_EQ(a.kind, SHMH_SEG_POSIX);
  CHECK_STR(a.name, name);
  CHECK(a.readonly);
  shmh_seg_close(&a);
  CHECK_EQ(shmh_seg_unlink(&m), 0);
  shmh_seg_close(&m);

  /* A pipe is no segment; on failure the caller still owns the descriptor. */
  int p[2];
  CHECK_EQ(pipe(p), 0);
  CHECK_EQ(shmh_seg_fd_kind(p[0]), SHMH_SEG_NONE);
  CHECK_EQ(shmh_seg_adopt_fd(&a, p[0]), -ENODEV);
  CHECK_EQ(fcntl(p[0], F_GETFD) >= 0, 1);
  close(p[0]);
  close(p[1]);
}

static void t_bounds(void) {
  shmh_seg m;
  struct shmh_seg_opts o = create_opts(100);
  CHECK_EQ(shmh_seg_open_memfd(&m, "unit-bounds", &o), 0);
  CHECK(shmh_seg_in_bounds(&m, 0, 100));
  CHECK(shmh_seg_in_bounds(&m, 100, 0));
  CHECK(shmh_seg_in_bounds(&m, 96, 4));
  CHECK(!shmh_seg_in_bounds(&m, 97, 4));
  CHECK(!shmh_seg_in_bounds(&m, 101, 0));
  CHECK(!shmh_seg_in_bounds(&m, 1, UINT64_MAX));
  CHECK(!shmh_seg_in_bounds(&m, UINT64_MAX, 2));
  shmh_seg_close(&m);
  CHECK(!shmh_seg_in_bounds(&m, 0, 1));
}

/* A POSIX name always lives in /dev/shm (glibc's shm_open opens /dev/shm/NAME), so the real
 * test of a full tmpfs is a private mount namespace with a small tmpfs over /dev/shm. */
static void t_enospc(void) {
  if (unshare(CLONE_NEWNS) < 0 ||
      mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
      mount("tmpfs", "/dev/shm", "tmpfs", 0, "size=64k,mode=1777") < 0) {
    printf("skip t_enospc: cannot mount a tmpfs in a private namespace: %s\n", strerror(errno));
    return;
  }
  const char *name = uname_("full");
  shmh_seg s;
  struct shmh_seg_opts o = create_opts(1 << 20);
  CHECK_EQ(shmh_seg_open_posix(&s, name, &o), -ENOSPC);
  CHECK_STR(s.fail_call, "posix_fallocate");
  /* The failed creation is undone: the name is gone. */
  char path[128];
  snprintf(path, sizeof path, "/dev/shm%s", name);
  CHECK(access(path, F_OK) < 0 && errno == ENOENT);
  /* What fits still works, and growing past the limit fails the same way and keeps the old
   * size. */
  o.size = 16384;
  CHECK_EQ(shmh_seg_open_posix(&s, name, &o), 0);
  CHECK_EQ(shmh_seg_resize(&s, 1 << 20), -ENOSPC);
  struct shmh_seg_stat st;
  CHECK_EQ(shmh_seg_stat(&s, &st), 0);
  CHECK_EQ(st.size, 16384);
  CHECK_EQ(s.size, 16384);
  CHECK_EQ(shmh_seg_unlink(&s), 0);
  shmh_seg_close(&s);
}

/* Runs `peer` in a child process and waits for it. */
static void in_peer(void (*peer)(const void *), const void *arg) {
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    peer(arg);
    _exit(0);
  }
  int status;
  CHECK_EQ(waitpid(pid, &status, 0), pid);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void peer_truncate_name(const void *name) {
  int fd = shm_open(name, O_RDWR, 0);
  if (fd < 0 || ftruncate(fd, 0) < 0) _exit(1);
}

static void peer_truncate_fd(const void *fdp) {
  if (ftruncate(*(const int *)fdp, 0) < 0) _exit(1);
}

static void t_guard_posix(void) {
  const char *name = uname_("guard");
  shmh_seg s;
  struct shmh_seg_opts o = create_opts(3 * 4096);
  CHECK_EQ(shmh_seg_open_posix(&s, name, &o), 0);
  CHECK(s.guarded);
  memset(s.addr, 7, s.size);
  in_peer(peer_truncate_name, name);
  /* The next touch faults; the guard repairs it, and we are still here to see `broken`. */
  volatile unsigned char *p = s.addr;
  unsigned char v = p[5000];
  CHECK_EQ(v, 0);
  CHECK_EQ(s.broken, 1);
  p[100] = 1; /* writes are harmless too */
  CHECK_EQ(shm_unlink(name), 0);
  shmh_seg_close(&s);
}

static void t_guard_memfd(void) {
  shmh_seg s, sealed;
  struct shmh_seg_opts o = create_opts(4096);
  CHECK_EQ(shmh_seg_open_memfd(&s, "unit-guard", &o), 0);
  o.seal = 1;
  CHECK_EQ(shmh_seg_open_memfd(&sealed, "unit-guard-sealed", &o), 0);
  in_peer(peer_truncate_fd, &s.fd);
  volatile char *p = s.addr;
  (void)p[0];
  CHECK_EQ(s.broken, 1);
  /* A sealed memfd cannot be truncated by the peer at all. */
  CHECK(ftruncate(sealed.fd, 0) < 0 && errno == EPERM);
  ((volatile char *)sealed.addr)[0] = 1;
  CHECK_EQ(sealed.broken, 0);
  shmh_seg_close(&s);
  shmh_seg_close(&sealed);
}

/* Dies by SIGBUS: a fault outside every segment is not swallowed by the guard. */
static void peer_fault_elsewhere(const void *unused) {
  shmh_seg m;
  struct shmh_seg_opts o = create_opts(4096);
  if (shmh_seg_open_memfd(&m, "unit-guard-installed", &o) < 0) _exit(3);
  int fd = memfd_create("unguarded", 0);
  if (fd < 0 || ftruncate(fd, 4096) < 0) _exit(3);
  volatile char *p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED || ftruncate(fd, 0) < 0) _exit(3);
  (void)p[0];
  _exit(4);
}

static void peer_kill_self(const void *unused) {
  if (shmh_seg_guard_install() < 0) _exit(3);
  kill(getpid(), SIGBUS);
  _exit(4);
}

static void t_guard_passes_other_faults(void) {
  void (*peers[])(const void *) = {peer_fault_elsewhere, peer_kill_self};
  for (int i = 0; i < 2; i++) {
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
      /* No core files from the expected deaths. */
      struct rlimit rl = {0, 0};
      setrlimit(RLIMIT_CORE, &rl);
      peers[i](NULL);
      _exit(5);
    }
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFSIGNALED(status));
    CHECK_EQ(WTERMSIG(status), SIGBUS);
  }
}

/* Many guarded segments: the registry grows past one chunk and finds each. */
static void t_guard_many(void) {
  enum { N = 150 };
  static shmh_seg segs[N];
  struct shmh_seg_opts o = create_opts(4096);
  for (int i = 0; i < N; i++) CHECK_EQ(shmh_seg_open_memfd(&segs[i], "unit-many", &o), 0);
  for (int i = 0; i < N; i += 37) {
    in_peer(peer_truncate_fd, &segs[i].fd);
    (void)((volatile char *)segs[i].addr)[10];
    CHECK_EQ(segs[i].broken, 1);
    CHECK_EQ(segs[i + 1].broken, 0);
  }
  for (int i = 0; i < N; i++) shmh_seg_close(&segs[i]);
}

int main(void) {
  return RUN(t_posix_create_open, t_posix_errors_and_modes, t_sysv, t_memfd_seal_resize,
             t_adopt, t_bounds, t_enospc, t_guard_posix, t_guard_memfd,
             t_guard_passes_other_faults, t_guard_many);
}
