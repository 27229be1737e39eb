#include "cleanup.h"

#include <errno.h>
#include <limits.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <unistd.h>

struct entry {
  int handle;                 /* 0 when the slot is free */
  enum shmh_cleanup_kind kind;
  int id;
  int have_ino;
  dev_t dev;
  ino_t ino;
  char *name;
};

static struct entry *entries;
static int nentries, capentries, next_handle = 1;

/* Where the kernel keeps a POSIX name: glibc maps shm_open("/x") to /dev/shm/x and
 * sem_open("/x") to /dev/shm/sem.x. */
static void backing_path(const struct entry *e, char *buf, size_t n) {
  switch (e->kind) {
  case SHMH_CLEANUP_POSIX_SHM: snprintf(buf, n, "/dev/shm%s", e->name); break;
  case SHMH_CLEANUP_POSIX_SEM: snprintf(buf, n, "/dev/shm/sem.%s", e->name + 1); break;
  case SHMH_CLEANUP_PATH: snprintf(buf, n, "%s", e->name); break;
  default: buf[0] = '\0'; break;
  }
}

int shmh_cleanup_add(enum shmh_cleanup_kind kind, const char *name, int id) {
  int named = kind == SHMH_CLEANUP_POSIX_SHM || kind == SHMH_CLEANUP_POSIX_SEM ||
              kind == SHMH_CLEANUP_PATH;
  if (named && (name == NULL || name[0] == '\0')) return -EINVAL;
  if (nentries == capentries) {
    int ncap = capentries ? capentries * 2 : 16;
    struct entry *ne = realloc(entries, (size_t)ncap * sizeof *ne);
    if (ne == NULL) return -ENOMEM;
    entries = ne;
    capentries = ncap;
  }
  struct entry e = {.handle = next_handle, .kind = kind, .id = id};
  if (named) {
    e.name = strdup(name);
    if (e.name == NULL) return -ENOMEM;
    char path[PATH_MAX + 16];
    struct stat st;
    backing_path(&e, path, sizeof path);
    if (lstat(path, &st) == 0) {
      e.have_ino = 1;
      e.dev = st.st_dev;
      e.ino = st.st_ino;
    }
  }
  entries[nentries++] = e;
  return next_handle++;
}

static struct entry *find(int handle) {
  for (int i = 0; i < nentries; i++)
    if (entries[i].handle == handle) return &entries[i];
  return NULL;
}

static void drop(struct entry *e) {
  free(e->name);
  *e = entries[--nentries];
}

void shmh_cleanup_forget(int handle) {
  struct entry *e = find(handle);
  if (e) drop(e);
}

static int remove_entry(const struct entry *e) {
  if (e->have_ino) {
    char path[PATH_MAX + 16];
    struct stat st;
    backing_path(e, path, sizeof path);
    if (lstat(path, &st) < 0) return -errno;
    if (st.st_dev != e->dev || st.st_ino != e->ino) return -ENOENT;
  }
  int rc = 0;
  switch (e->kind) {
  case SHMH_CLEANUP_POSIX_SHM: rc = shm_unlink(e->name); break;
  case SHMH_CLEANUP_POSIX_SEM: rc = sem_unlink(e->name); break;
  case SHMH_CLEANUP_SYSV_SHM: rc = shmctl(e->id, IPC_RMID, NULL); break;
  case SHMH_CLEANUP_SYSV_SEM: rc = semctl(e->id, 0, IPC_RMID); break;
  case SHMH_CLEANUP_PATH: rc = unlink(e->name); break;
  }
  return rc < 0 ? -errno : 0;
}

int shmh_cleanup_remove(int handle) {
  struct entry *e = find(handle);
  if (e == NULL) return -ENOENT;
  int rc = remove_entry(e);
  drop(e);
  return rc;
}

int shmh_cleanup_run(void) {
  int removed = 0;
  /* Newest first: a socket made after a segment goes before it, the reverse of creation. */
  int top = -1;
  while (nentries > 0) {
    top = -1;
    for (int i = 0; i < nentries; i++)
      if (top < 0 || entries[i].handle > entries[top].handle) top = i;
    if (remove_entry(&entries[top]) == 0) removed++;
    drop(&entries[top]);
  }
  free(entries);
  entries = NULL;
  capentries = 0;
  return removed;
}

int shmh_cleanup_count(void) { return nentries; }
