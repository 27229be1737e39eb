/*
 * The registry of objects this process created and must remove when it ends: POSIX shared
 * memory names, named semaphores, System V segments, socket paths. The runtime runs it at a
 * normal end, after an uncaught error, on SIGINT/SIGTERM/SIGHUP, and from atexit (so that
 * os.exit() from a script cleans up too). An object that is closed, kept, or removed by its
 * owner earlier leaves the registry with shmh_cleanup_forget.
 *
 * A name can be taken over by another process after we created it (a peer removed ours and
 * made its own). Entries with a name remember the device and inode they had when registered,
 * and cleanup removes only that same file, never a successor's.
 */
#ifndef SHMHOST_CLEANUP_H
#define SHMHOST_CLEANUP_H

enum shmh_cleanup_kind {
  SHMH_CLEANUP_POSIX_SHM = 1, /* name as given to shm_open, "/x" */
  SHMH_CLEANUP_POSIX_SEM,     /* name as given to sem_open, "/x" */
  SHMH_CLEANUP_SYSV_SHM,      /* System V shared memory id */
  SHMH_CLEANUP_SYSV_SEM,      /* System V semaphore set id */
  SHMH_CLEANUP_PATH           /* a filesystem path, e.g. a socket */
};

/* Registers an object; `name` for the named kinds, `id` for the System V ones. Returns a
 * handle > 0, or a negative errno. */
int shmh_cleanup_add(enum shmh_cleanup_kind kind, const char *name, int id);

/* Drops an entry without removing the object (kept, or already removed by its owner). */
void shmh_cleanup_forget(int handle);

/* Removes the object now and drops the entry. Returns 0, or a negative errno from the removal
 * (-ENOENT when it was already gone, or when the name now belongs to another object). */
int shmh_cleanup_remove(int handle);

/* Removes every registered object, newest first. Returns how many were removed. Idempotent. */
int shmh_cleanup_run(void);

/* How many entries are registered (for tests). */
int shmh_cleanup_count(void);

#endif
