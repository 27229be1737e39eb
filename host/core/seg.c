#include "seg.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#ifndef TMPFS_MAGIC
#define TMPFS_MAGIC 0x01021994
#endif

/* ---- the SIGBUS guard ----
 *
 * The registry of guarded mappings is read from a signal handler, which may interrupt the
 * thread that is changing it, so it takes no lock: fixed slots of atomics, claimed by CAS, in
 * chunks that are linked once and never freed (the handler may be walking one). A slot is live
 * when `seg` is set and `start` is non-zero; it is filled seg, len, start and emptied start,
 * len, seg, so a reader never sees a range that belongs to no segment. */

#define GUARD_SLOTS 64

struct guard_slot {
  _Atomic(shmh_seg *) seg;
  _Atomic(uintptr_t) start;
  _Atomic(size_t) len;
};

struct guard_chunk {
  struct guard_slot slot[GUARD_SLOTS];
  _Atomic(struct guard_chunk *) next;
};

static struct guard_chunk guard_first;
static atomic_int guard_installed;
static struct sigaction guard_previous;

static void guard_pass_on(int sig, siginfo_t *si, void *uc) {
  /* A handler that was there before us (ASan's, when it handles SIGBUS) gets the fault. */
  if ((guard_previous.sa_flags & SA_SIGINFO) && guard_previous.sa_sigaction != NULL) {
    guard_previous.sa_sigaction(sig, si, uc);
    return;
  }
  if (guard_previous.sa_handler != SIG_DFL && guard_previous.sa_handler != SIG_IGN &&
      guard_previous.sa_handler != NULL) {
    guard_previous.sa_handler(sig);
    return;
  }
  /* Not a segment of ours: a real bug. The default action must kill the process with SIGBUS
   * as it would have without us. SA_NODEFER leaves SIGBUS unblocked in this handler, so the
   * raise below is delivered at once, to the default action. */
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(SIGBUS, &dfl, NULL);
  raise(SIGBUS);
}

static void guard_handler(int sig, siginfo_t *si, void *uc) {
  int saved_errno = errno;
  /* si_code > 0 means the kernel raised it for a memory access; kill() and sigqueue() give
   * SI_USER/SI_QUEUE (<= 0) and an si_addr that means nothing. */
  if (si != NULL && si->si_code > 0) {
    uintptr_t a = (uintptr_t)si->si_addr;
    for (struct guard_chunk *c = &guard_first; c != NULL; c = atomic_load(&c->next)) {
      for (int i = 0; i < GUARD_SLOTS; i++) {
        struct guard_slot *g = &c->slot[i];
        shmh_seg *s = atomic_load(&g->seg);
        uintptr_t start = atomic_load(&g->start);
        size_t len = atomic_load(&g->len);
        if (s == NULL || start == 0 || a < start || a - start >= len) continue;
        /* A page past the end of the file was touched: the peer shrank the object. Anonymous
         * zero pages over the whole range let the faulting instruction complete (the kernel
         * restarts it on return) and keep every later access harmless; `broken` tells the
         * caller. mmap is a plain system call, safe here. */
        void *p = mmap((void *)start, len, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        if (p != MAP_FAILED) {
          s->broken = 1;
          errno = saved_errno;
          return;
        }
      }
    }
  }
  guard_pass_on(sig, si, uc);
  errno = saved_errno;
}

int shmh_seg_guard_install(void) {
  int expected = 0;
  if (!atomic_compare_exchange_strong(&guard_installed, &expected, 1)) return 0;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = guard_handler;
  sigemptyset(&sa.sa_mask);
  /* SA_NODEFER: when the fault is not ours the handler re-raises SIGBUS for the default
   * action, which must not wait behind a blocked signal until the handler returns (a
   * synchronous fault with SIGBUS blocked would kill the process without a core anyway). */
  sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_RESTART;
  if (sigaction(SIGBUS, &sa, &guard_previous) < 0) {
    atomic_store(&guard_installed, 0);
    return -errno;
  }
  return 0;
}

static int guard_add(shmh_seg *s, void *addr, size_t len) {
  int rc = shmh_seg_guard_install();
  if (rc < 0) return rc;
  struct guard_chunk *c = &guard_first;
  for (;;) {
    for (int i = 0; i < GUARD_SLOTS; i++) {
      struct guard_slot *g = &c->slot[i];
      shmh_seg *none = NULL;
      if (atomic_load(&g->seg) != NULL) continue;
      if (!atomic_compare_exchange_strong(&g->seg, &none, s)) continue;
      atomic_store(&g->len, len);
      atomic_store(&g->start, (uintptr_t)addr);
      return 0;
    }
    struct guard_chunk *next = atomic_load(&c->next);
    if (next == NULL) {
      struct guard_chunk *fresh = calloc(1, sizeof *fresh);
      if (fresh == NULL) return -ENOMEM;
      if (!atomic_compare_exchange_strong(&c->next, &next, fresh)) free(fresh);
      next = atomic_load(&c->next);
    }
    c = next;
  }
}

/* Finds the slot of segment `s` for the mapping at `addr` (any of its mappings when NULL). */
static struct guard_slot *guard_find(const shmh_seg *s, const void *addr) {
  for (struct guard_chunk *c = &guard_first; c != NULL; c = atomic_load(&c->next))
    for (int i = 0; i < GUARD_SLOTS; i++) {
      struct guard_slot *g = &c->slot[i];
      if (atomic_load(&g->seg) != s) continue;
      if (addr == NULL || atomic_load(&g->start) == (uintptr_t)addr) return g;
    }
  return NULL;
}

static void guard_clear(struct guard_slot *g) {
  atomic_store(&g->start, 0);
  atomic_store(&g->len, 0);
  atomic_store(&g->seg, NULL);
}

static void guard_remove_all(shmh_seg *s) {
  struct guard_slot *g;
  while ((g = guard_find(s, NULL)) != NULL) guard_clear(g);
}

/* ---- opening ---- */

void shmh_seg_init(shmh_seg *s) {
  memset(s, 0, sizeof *s);
  s->kind = SHMH_SEG_NONE;
  s->fd = -1;
  s->shmid = -1;
  s->key = IPC_PRIVATE;
}

static int fail(shmh_seg *s, const char *call, int err) {
  s->fail_call = call;
  return -err;
}

/* The guard is needed unless the object refuses to shrink (a memfd sealed with
 * F_SEAL_SHRINK). F_GET_SEALS fails on files that are not shmem, which can shrink. */
static int needs_guard(int fd) {
  int seals = fcntl(fd, F_GET_SEALS);
  return !(seals >= 0 && (seals & F_SEAL_SHRINK));
}

/* Maps s->fd for s->size bytes and registers the mapping with the guard when needed. */
static int map_fd(shmh_seg *s) {
  if (s->size == 0) return 0;
  int prot = s->readonly ? PROT_READ : PROT_READ | PROT_WRITE;
  void *p = mmap(NULL, s->size, prot, MAP_SHARED, s->fd, 0);
  if (p == MAP_FAILED) return fail(s, "mmap", errno);
  if (needs_guard(s->fd)) {
    int rc = guard_add(s, p, s->size);
    if (rc < 0) {
      munmap(p, s->size);
      return fail(s, "sigaction", -rc);
    }
    s->guarded = 1;
  }
  s->addr = p;
  return 0;
}

/* Sets the size of a new object and reserves its pages, so that a full tmpfs is an error now
 * instead of a SIGBUS at the first write to a page the kernel cannot supply. */
static int size_fd(shmh_seg *s, off_t from, size_t size) {
  if (size > (size_t)INT64_MAX) return fail(s, "ftruncate", EFBIG);
  if (ftruncate(s->fd, (off_t)size) < 0) return fail(s, "ftruncate", errno);
  if ((off_t)size > from) {
    /* posix_fallocate returns the error number instead of setting errno. */
    int err = posix_fallocate(s->fd, from, (off_t)size - from);
    if (err != 0) return fail(s, "posix_fallocate", err);
  }
  return 0;
}

static int fd_size(shmh_seg *s) {
  struct stat st;
  if (fstat(s->fd, &st) < 0) return fail(s, "fstat", errno);
  s->size = (size_t)st.st_size;
  return 0;
}

static int set_name(shmh_seg *s, const char *name, const char *call) {
  size_t n = strlen(name);
  if (n >= sizeof s->name) return fail(s, call, ENAMETOOLONG);
  memcpy(s->name, name, n + 1);
  return 0;
}

int shmh_seg_open_posix(shmh_seg *s, const char *name, const struct shmh_seg_opts *o) {
  shmh_seg_init(s);
  int rc = set_name(s, name, "shm_open");
  if (rc < 0) return rc;
  int acc = o->readonly ? O_RDONLY : O_RDWR;
  int trunc = o->truncate ? O_TRUNC : 0;
  int fd = -1;
  /* O_CREAT alone does not say whether this call created the object; try O_EXCL first and
   * fall back to opening, retrying if a peer removes it in between. */
  for (int attempt = 0; attempt < 100 && fd < 0; attempt++) {
    if (o->create) {
      fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, o->mode & 07777);
      if (fd >= 0) {
        s->created = 1;
        break;
      }
      if (errno != EEXIST || o->excl) return fail(s, "shm_open", errno);
    }
    fd = shm_open(name, acc | trunc, 0);
    if (fd < 0 && !(o->create && errno == ENOENT)) return fail(s, "shm_open", errno);
  }
  if (fd < 0) return fail(s, "shm_open", EAGAIN);
  s->fd = fd;
  s->kind = SHMH_SEG_POSIX;
  s->readonly = o->readonly;
  if (s->created) {
    /* shm_open applies the umask; the mode asked for is applied exactly, as shmget does. */
    if (fchmod(fd, o->mode & 07777) < 0) rc = fail(s, "fchmod", errno);
    else rc = size_fd(s, 0, o->size);
    if (rc == 0) s->size = o->size;
  } else if (o->truncate) {
    rc = size_fd(s, 0, o->size);
    if (rc == 0) s->size = o->size;
  } else {
    rc = fd_size(s);
    /* Asked to create, found an existing object smaller than the size asked for: fail with
     * EINVAL as shmget does, rather than hand the script less than it asked for. */
    if (rc == 0 && o->create && s->size < o->size) rc = fail(s, "shm_open", EINVAL);
  }
  if (rc == 0) rc = map_fd(s);
  if (rc < 0) {
    const char *call = s->fail_call;
    if (s->created) shm_unlink(name);
    shmh_seg_close(s);
    s->fail_call = call;
  }
  return rc;
}

int shmh_seg_map_again(shmh_seg *dst, const shmh_seg *src, int readonly) {
  if (src->kind == SHMH_SEG_SYSV) return shmh_seg_attach_sysv(dst, src->shmid, readonly);
  shmh_seg_init(dst);
  int fd = dup(src->fd);
  if (fd < 0) return fail(dst, "dup", errno);
  int rc = shmh_seg_adopt_fd(dst, fd);
  if (rc < 0) close(fd);
  return rc;
}

int shmh_seg_publish(shmh_seg *s, const char *name) {
  if (s->kind != SHMH_SEG_POSIX) return fail(s, "link", EINVAL);
  char from[NAME_MAX + 16], to[NAME_MAX + 16];
  /* glibc keeps shm_open("/x") as the file /dev/shm/x. */
  snprintf(from, sizeof from, "/dev/shm%s", s->name);
  int n = snprintf(to, sizeof to, "/dev/shm%s", name);
  if (n < 0 || (size_t)n >= sizeof to || strlen(name) >= sizeof s->name)
    return fail(s, "link", ENAMETOOLONG);
  if (link(from, to) < 0) return fail(s, "link", errno);
  shm_unlink(s->name);
  memcpy(s->name, name, strlen(name) + 1);
  return 0;
}

static int sysv_size(shmh_seg *s) {
  struct shmid_ds ds;
  if (shmctl(s->shmid, IPC_STAT, &ds) < 0) return fail(s, "shmctl", errno);
  s->size = ds.shm_segsz;
  s->key = ds.shm_perm.__key;
  return 0;
}

static int sysv_attach(shmh_seg *s, int readonly) {
  s->kind = SHMH_SEG_SYSV;
  s->readonly = readonly;
  void *p = shmat(s->shmid, NULL, readonly ? SHM_RDONLY : 0);
  if (p == (void *)-1) return fail(s, "shmat", errno);
  s->addr = p; /* shmh_seg_close detaches it if the size cannot be read */
  return sysv_size(s);
}

int shmh_seg_open_sysv(shmh_seg *s, key_t key, const struct shmh_seg_opts *o) {
  shmh_seg_init(s);
  int perm = (int)(o->mode & 0777);
  int id;
  if (key == IPC_PRIVATE) {
    /* IPC_PRIVATE always makes a new segment, whatever the flags. */
    id = shmget(IPC_PRIVATE, o->size, perm | IPC_CREAT);
    if (id >= 0) s->created = 1;
  } else if (o->create) {
    id = shmget(key, o->size, perm | IPC_CREAT | IPC_EXCL);
    if (id >= 0) s->created = 1;
    /* Opening the existing segment with the size asked for fails with EINVAL when it is
     * smaller, as shmget(IPC_CREAT) does in C: a script never gets less than it asked. */
    else if (errno == EEXIST && !o->excl) id = shmget(key, o->size, 0);
  } else {
    /* Size 0 and no permission bits: find the segment whatever its size; shmat checks the
     * access. */
    id = shmget(key, 0, 0);
  }
  if (id < 0) return fail(s, "shmget", errno);
  s->shmid = id;
  int rc = sysv_attach(s, o->readonly);
  if (rc < 0) {
    const char *call = s->fail_call;
    if (s->created) shmctl(id, IPC_RMID, NULL);
    shmh_seg_close(s);
    s->fail_call = call;
    return rc;
  }
  s->key = key;
  return 0;
}

int shmh_seg_attach_sysv(shmh_seg *s, int shmid, int readonly) {
  shmh_seg_init(s);
  s->shmid = shmid;
  int rc = sysv_attach(s, readonly);
  if (rc < 0) {
    const char *call = s->fail_call;
    shmh_seg_close(s);
    s->fail_call = call;
  }
  return rc;
}

int shmh_seg_open_memfd(shmh_seg *s, const char *name, const struct shmh_seg_opts *o) {
  shmh_seg_init(s);
  int rc = set_name(s, name, "memfd_create");
  if (rc < 0) return rc;
  int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return fail(s, "memfd_create", errno);
  s->fd = fd;
  s->kind = SHMH_SEG_MEMFD;
  s->created = 1;
  s->readonly = o->readonly;
  /* A memfd starts with mode 0777; a peer could reopen it through /proc/PID/fd. */
  if (fchmod(fd, o->mode & 07777) < 0) rc = fail(s, "fchmod", errno);
  else rc = size_fd(s, 0, o->size);
  if (rc == 0) {
    s->size = o->size;
    if (o->seal &&
        fcntl(fd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) < 0)
      rc = fail(s, "fcntl", errno);
  }
  if (rc == 0) rc = map_fd(s);
  if (rc < 0) {
    const char *call = s->fail_call;
    shmh_seg_close(s);
    s->fail_call = call;
  }
  return rc;
}

/* Reads the /proc/self/fd link of `fd`: "/memfd:NAME (deleted)" for a memfd,
 * "/dev/shm/NAME" for a POSIX object. Returns the length, or -1. */
static ssize_t fd_link(int fd, char *buf, size_t n) {
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  ssize_t k = readlink(path, buf, n - 1);
  if (k < 0) return -1;
  buf[k] = '\0';
  return k;
}

enum shmh_seg_kind shmh_seg_fd_kind(int fd) {
  char link[PATH_MAX];
  struct stat st;
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) return SHMH_SEG_NONE;
  if (fd_link(fd, link, sizeof link) > 0 && strncmp(link, "/memfd:", 7) == 0)
    return SHMH_SEG_MEMFD;
  struct statfs fs;
  if (fstatfs(fd, &fs) == 0 && fs.f_type == TMPFS_MAGIC) return SHMH_SEG_POSIX;
  return SHMH_SEG_NONE;
}

/* The name of an adopted object, from its link: a memfd's own name, or "/NAME" for a file
 * directly in /dev/shm; empty when there is none. */
static void adopted_name(shmh_seg *s, int fd) {
  char link[PATH_MAX];
  ssize_t k = fd_link(fd, link, sizeof link);
  s->name[0] = '\0';
  if (k <= 0) return;
  static const char deleted[] = " (deleted)";
  size_t dl = sizeof deleted - 1;
  if ((size_t)k > dl && strcmp(link + k - dl, deleted) == 0) link[k - dl] = '\0';
  const char *name = NULL;
  if (s->kind == SHMH_SEG_MEMFD) name = link + 7;
  else if (strncmp(link, "/dev/shm/", 9) == 0 && strchr(link + 9, '/') == NULL)
    name = link + 8;
  if (name != NULL && strlen(name) < sizeof s->name) strcpy(s->name, name);
}

int shmh_seg_adopt_fd(shmh_seg *s, int fd) {
  shmh_seg_init(s);
  enum shmh_seg_kind kind = shmh_seg_fd_kind(fd);
  /* Only shared memory is adopted: a pipe or socket cannot be mapped, and a disk file is not
   * what a peer means by a segment. */
  if (kind == SHMH_SEG_NONE) return fail(s, "mmap", ENODEV);
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0) return fail(s, "fcntl", errno);
  /* MAP_SHARED needs read access; O_WRONLY descriptors cannot be mapped at all. */
  if ((fl & O_ACCMODE) == O_WRONLY) return fail(s, "mmap", EACCES);
  s->kind = kind;
  s->fd = fd;
  s->readonly = (fl & O_ACCMODE) == O_RDONLY;
  adopted_name(s, fd);
  int rc = fd_size(s);
  if (rc == 0) rc = map_fd(s);
  if (rc < 0) {
    /* The caller keeps the descriptor on failure. */
    const char *call = s->fail_call;
    s->fd = -1;
    shmh_seg_close(s);
    s->fail_call = call;
  }
  return rc;
}

int shmh_seg_ftok(const char *path, int proj, key_t *key) {
  if (proj < 1 || proj > 255) return -EINVAL;
  key_t k = ftok(path, proj);
  if (k == (key_t)-1) return -errno;
  *key = k;
  return 0;
}

/* ---- using ---- */

int shmh_seg_in_bounds(const shmh_seg *s, uint64_t off, uint64_t len) {
  return off <= s->size && len <= s->size - off;
}

int shmh_seg_resize(shmh_seg *s, size_t size) {
  if (s->kind == SHMH_SEG_SYSV) return fail(s, "ftruncate", EOPNOTSUPP);
  if (s->kind == SHMH_SEG_NONE || s->fd < 0) return fail(s, "ftruncate", EBADF);
  if (s->broken) return fail(s, "ftruncate", EFAULT);
  if (size == s->size) return 0;
  size_t old = s->size;
  int rc = size_fd(s, (off_t)old, size);
  if (rc < 0) {
    if (size > old) (void)!ftruncate(s->fd, (off_t)old);
    return rc;
  }
  int prot = s->readonly ? PROT_READ : PROT_READ | PROT_WRITE;
  if (s->addr == NULL) {
    s->size = size;
    rc = map_fd(s);
    if (rc < 0) s->size = 0;
    return rc;
  }
  struct guard_slot *g = s->guarded ? guard_find(s, s->addr) : NULL;
  if (size == 0) {
    if (g) guard_clear(g);
    munmap(s->addr, old);
    s->addr = NULL;
    s->size = 0;
    return 0;
  }
  /* Shrinking always stays in place; growing does when the address space after the mapping
   * is free. */
  void *p = mremap(s->addr, old, size, 0);
  if (p != MAP_FAILED) {
    if (g) atomic_store(&g->len, size);
    s->size = size;
    return 0;
  }
  /* It must move. A fresh mapping goes elsewhere and the old one stays until close: mutexes,
   * semaphores and threads may hold pointers into it, and it shows the same pages. */
  struct shmh_seg_old *no = realloc(s->old, (size_t)(s->nold + 1) * sizeof *no);
  if (no == NULL) return fail(s, "mremap", ENOMEM);
  s->old = no;
  p = mmap(NULL, size, prot, MAP_SHARED, s->fd, 0);
  if (p == MAP_FAILED) return fail(s, "mmap", errno);
  if (s->guarded) {
    rc = guard_add(s, p, size);
    if (rc < 0) {
      munmap(p, size);
      return fail(s, "sigaction", -rc);
    }
  }
  s->old[s->nold].addr = s->addr;
  s->old[s->nold].len = old;
  s->nold++;
  s->addr = p;
  s->size = size;
  return 0;
}

int shmh_seg_stat(const shmh_seg *s, struct shmh_seg_stat *st) {
  memset(st, 0, sizeof *st);
  if (s->kind == SHMH_SEG_SYSV) {
    struct shmid_ds ds;
    if (shmctl(s->shmid, IPC_STAT, &ds) < 0) return -errno;
    st->size = ds.shm_segsz;
    st->mode = ds.shm_perm.mode & 0777;
    st->uid = ds.shm_perm.uid;
    st->gid = ds.shm_perm.gid;
    st->cuid = ds.shm_perm.cuid;
    st->cgid = ds.shm_perm.cgid;
    st->nattch = ds.shm_nattch;
    st->cpid = ds.shm_cpid;
    st->lpid = ds.shm_lpid;
    st->atime = ds.shm_atime;
    st->dtime = ds.shm_dtime;
    st->ctime = ds.shm_ctime;
    st->key = ds.shm_perm.__key;
    st->id = s->shmid;
    st->removed = (ds.shm_perm.mode & SHM_DEST) != 0;
    return 0;
  }
  if (s->fd < 0) return -EBADF;
  struct stat fs;
  if (fstat(s->fd, &fs) < 0) return -errno;
  st->size = (uint64_t)fs.st_size;
  st->mode = fs.st_mode & 07777;
  st->uid = fs.st_uid;
  st->gid = fs.st_gid;
  st->atime = fs.st_atime;
  st->ctime = fs.st_ctime;
  st->removed = fs.st_nlink == 0;
  return 0;
}

int shmh_seg_unlink(shmh_seg *s) {
  switch (s->kind) {
  case SHMH_SEG_POSIX:
    if (s->name[0] != '/') return fail(s, "shm_unlink", EINVAL);
    if (shm_unlink(s->name) < 0) return fail(s, "shm_unlink", errno);
    return 0;
  case SHMH_SEG_SYSV:
    if (shmctl(s->shmid, IPC_RMID, NULL) < 0) return fail(s, "shmctl", errno);
    return 0;
  default:
    return fail(s, "shm_unlink", EINVAL);
  }
}

void shmh_seg_close(shmh_seg *s) {
  /* Out of the guard before unmapping: the address range may be reused at once, and the
   * handler must never map over someone else's memory. */
  if (s->guarded) guard_remove_all(s);
  s->guarded = 0;
  if (s->addr != NULL) {
    if (s->kind == SHMH_SEG_SYSV) shmdt(s->addr);
    else munmap(s->addr, s->size);
  }
  for (int i = 0; i < s->nold; i++) munmap(s->old[i].addr, s->old[i].len);
  free(s->old);
  s->old = NULL;
  s->nold = 0;
  if (s->fd >= 0) close(s->fd);
  s->fd = -1;
  s->addr = NULL;
  s->size = 0;
  s->kind = SHMH_SEG_NONE;
}
