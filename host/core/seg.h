/*
 * Segments: one structure for the three kinds of Linux shared memory (POSIX shm_open, System
 * V shmget, memfd_create) and for a descriptor adopted from a peer. Each kind ends up as one
 * MAP_SHARED mapping of `size` bytes at `addr`.
 *
 * A peer can shrink a POSIX or unsealed memfd object under us (ftruncate); touching a mapped
 * page past the new end of file then raises SIGBUS. The guard (shmh_seg_guard_*) catches that
 * fault for the mappings it knows, maps anonymous memory over the segment so the faulting
 * instruction completes, and sets `broken`, which the caller checks after each access. System
 * V segments cannot shrink and sealed memfds refuse to, so they are not guarded.
 *
 * Every function returns 0 or a negative errno. On failure `fail_call` names the system call
 * that failed ("shm_open", "ftruncate", ...) so a caller can build "shm_open /x: File exists".
 */
#ifndef SHMHOST_SEG_H
#define SHMHOST_SEG_H

#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

enum shmh_seg_kind {
  SHMH_SEG_NONE = 0, /* closed, or not opened yet */
  SHMH_SEG_POSIX,
  SHMH_SEG_SYSV,
  SHMH_SEG_MEMFD
};

/* A mapping left in place when a segment grew and had to move: pointers handed out before the
 * move stay valid (same shared pages) until the segment closes. */
struct shmh_seg_old {
  void *addr;
  size_t len;
};

struct shmh_seg {
  enum shmh_seg_kind kind;
  int fd;               /* POSIX, memfd: the object's descriptor; -1 otherwise */
  int shmid;            /* System V: the id; -1 otherwise */
  key_t key;            /* System V: the key it was found by (IPC_PRIVATE for none) */
  void *addr;           /* NULL when size is 0 or when closed */
  size_t size;          /* bytes mapped */
  int readonly;         /* mapped PROT_READ only */
  int created;          /* this call created the object */
  int guarded;          /* registered with the SIGBUS guard */
  volatile sig_atomic_t broken; /* set by the guard: a peer truncated the object */
  const char *fail_call;        /* the call that failed, for messages */
  struct shmh_seg_old *old;     /* mappings retired by a moving resize */
  int nold;
  char name[NAME_MAX + 2];      /* POSIX: "/x"; memfd: the name given; System V: "" */
};
typedef struct shmh_seg shmh_seg;

/* Options for opening or creating. */
struct shmh_seg_opts {
  int create;   /* O_CREAT / IPC_CREAT */
  int excl;     /* O_EXCL / IPC_EXCL: fail with -EEXIST when it exists */
  int truncate; /* POSIX: O_TRUNC, then size the object to `size` */
  int readonly; /* map read-only (SHM_RDONLY for System V) */
  int seal;     /* memfd: F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL after sizing */
  size_t size;  /* bytes, required when creating */
  mode_t mode;  /* permissions of a created object (applied exactly, no umask) */
};

/* Resets a structure to the closed state (fd -1, no mapping). */
void shmh_seg_init(shmh_seg *s);

/* POSIX shared memory by name ("/x"). Creating reserves the pages with posix_fallocate, so a
 * full /dev/shm fails here with -ENOSPC (the new name is removed again) rather than with a
 * SIGBUS at the first touch. When `create` is set without `excl` and the object exists, it is
 * opened and `created` stays 0. */
int shmh_seg_open_posix(shmh_seg *s, const char *name, const struct shmh_seg_opts *o);

/* System V shared memory by key (IPC_PRIVATE always creates). */
int shmh_seg_open_sysv(shmh_seg *s, key_t key, const struct shmh_seg_opts *o);

/* Attaches the System V segment `shmid`. */
int shmh_seg_attach_sysv(shmh_seg *s, int shmid, int readonly);

/* A new memfd of o->size bytes (sealed when o->seal). */
int shmh_seg_open_memfd(shmh_seg *s, const char *name, const struct shmh_seg_opts *o);

/* Maps a descriptor received from a peer (fstat gives the size; the access mode of the open
 * file decides read-only). The structure owns `fd` on success; on failure the caller still
 * owns it. A memfd is told from a POSIX shm object by its /proc/self/fd link. */
int shmh_seg_adopt_fd(shmh_seg *s, int fd);

/* Maps `src`'s object a second time into `dst` (a dup of its descriptor, or another attach of
 * its System V segment), for a thread that must keep its own mapping: the script may close
 * `src` while the thread still waits on a word in it. `readonly` applies to System V only (an
 * adopted descriptor keeps its open mode). */
int shmh_seg_map_again(shmh_seg *dst, const shmh_seg *src, int readonly);

/* What a descriptor is, for a receiver that must tell segments from other files: SHMH_SEG_MEMFD
 * for a memfd, SHMH_SEG_POSIX for a file on tmpfs (shm_open objects live on /dev/shm),
 * SHMH_SEG_NONE for anything else. */
enum shmh_seg_kind shmh_seg_fd_kind(int fd);

/* The key System V ftok derives from a path and a project number (1..255). */
int shmh_seg_ftok(const char *path, int proj, key_t *key);

/* Changes the size (POSIX and memfd only: -EOPNOTSUPP for System V). Growing reserves the new
 * pages. When the mapping cannot grow in place, the old one is kept until close so pointers
 * into it stay valid. */
int shmh_seg_resize(shmh_seg *s, size_t size);

struct shmh_seg_stat {
  uint64_t size;
  mode_t mode;          /* permission bits */
  uid_t uid;
  gid_t gid;
  /* System V only */
  uid_t cuid;
  gid_t cgid;
  uint64_t nattch;
  pid_t cpid, lpid;
  time_t atime, dtime, ctime;
  key_t key;
  int id;
  int removed;          /* marked for removal (SHM_DEST) */
};

/* What the kernel says now (fstat, or IPC_STAT for System V). */
int shmh_seg_stat(const shmh_seg *s, struct shmh_seg_stat *st);

/* Removes the name (shm_unlink) or marks a System V segment for removal (IPC_RMID). The
 * mapping stays usable until close. -EINVAL for a memfd, which has no name to remove. */
int shmh_seg_unlink(shmh_seg *s);

/* Gives a POSIX object created under a temporary name its final name, atomically: link(2) in
 * /dev/shm fails with -EEXIST when the name exists, so of several processes racing to publish
 * an initialized object exactly one wins, and nobody ever opens one half initialized. On
 * success the temporary name is gone and `name` is the object's. */
int shmh_seg_publish(shmh_seg *s, const char *name);

/* Unmaps (shmdt) and closes; idempotent, never fails. */
void shmh_seg_close(shmh_seg *s);

/* True when [off, off+len) lies inside the mapping, without overflow. */
int shmh_seg_in_bounds(const shmh_seg *s, uint64_t off, uint64_t len);

/* The SIGBUS guard. Installing is idempotent and done by the open functions when needed. A
 * SIGBUS outside every guarded mapping restores the default action and is raised again, so a
 * real fault still kills the process. */
int shmh_seg_guard_install(void);

#endif
