/* The cleanup registry: what is registered is removed, what is forgotten stays, and a name
 * that another process took over is never removed. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "check.h"
#include "cleanup.h"

static char name[64];

static int shm_exists(const char *n) {
  char path[128];
  snprintf(path, sizeof path, "/dev/shm%s", n);
  return access(path, F_OK) == 0;
}

static void make_shm(const char *n) {
  int fd = shm_open(n, O_CREAT | O_EXCL | O_RDWR, 0600);
  CHECK(fd >= 0);
  close(fd);
}

static void t_posix_removed(void) {
  snprintf(name, sizeof name, "/shmht%d_cleanup_a", getpid());
  make_shm(name);
  CHECK(shmh_cleanup_add(SHMH_CLEANUP_POSIX_SHM, name, 0) > 0);
  CHECK_EQ(shmh_cleanup_count(), 1);
  CHECK_EQ(shmh_cleanup_run(), 1);
  CHECK(!shm_exists(name));
  CHECK_EQ(shmh_cleanup_count(), 0);
  CHECK_EQ(shmh_cleanup_run(), 0); /* idempotent */
}

static void t_forget_keeps(void) {
  snprintf(name, sizeof name, "/shmht%d_cleanup_b", getpid());
  make_shm(name);
  int h = shmh_cleanup_add(SHMH_CLEANUP_POSIX_SHM, name, 0);
  CHECK(h > 0);
  shmh_cleanup_forget(h);
  CHECK_EQ(shmh_cleanup_run(), 0);
  CHECK(shm_exists(name));
  shm_unlink(name);
}

static void t_successor_not_removed(void) {
  snprintf(name, sizeof name, "/shmht%d_cleanup_c", getpid());
  make_shm(name);
  int h = shmh_cleanup_add(SHMH_CLEANUP_POSIX_SHM, name, 0);
  CHECK(h > 0);
  /* Another process removes ours and creates its own under the same name. */
  shm_unlink(name);
  make_shm(name);
  CHECK_EQ(shmh_cleanup_remove(h), -ENOENT);
  CHECK(shm_exists(name));
  shm_unlink(name);
}

static void t_remove_now(void) {
  snprintf(name, sizeof name, "/shmht%d_cleanup_d", getpid());
  make_shm(name);
  int h = shmh_cleanup_add(SHMH_CLEANUP_POSIX_SHM, name, 0);
  CHECK_EQ(shmh_cleanup_remove(h), 0);
  CHECK(!shm_exists(name));
  CHECK_EQ(shmh_cleanup_remove(h), -ENOENT);
}

static void t_sysv_and_path(void) {
  int id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
  CHECK(id >= 0);
  CHECK(shmh_cleanup_add(SHMH_CLEANUP_SYSV_SHM, NULL, id) > 0);
  char path[108];
  snprintf(path, sizeof path, "/tmp/shmht%d_cleanup.sock", getpid());
  int s = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
  CHECK(bind(s, (struct sockaddr *)&sa, sizeof sa) == 0);
  CHECK(shmh_cleanup_add(SHMH_CLEANUP_PATH, path, 0) > 0);
  CHECK_EQ(shmh_cleanup_run(), 2);
  struct shmid_ds ds;
  CHECK(shmctl(id, IPC_STAT, &ds) < 0 && (errno == EINVAL || errno == EIDRM));
  CHECK(access(path, F_OK) < 0);
  close(s);
}

static void t_bad_arguments(void) {
  CHECK_EQ(shmh_cleanup_add(SHMH_CLEANUP_POSIX_SHM, NULL, 0), -EINVAL);
  CHECK_EQ(shmh_cleanup_add(SHMH_CLEANUP_PATH, "", 0), -EINVAL);
  shmh_cleanup_forget(12345); /* unknown handles are ignored */
  CHECK_EQ(shmh_cleanup_remove(12345), -ENOENT);
}

int main(void) {
  return RUN(t_posix_removed, t_forget_keeps, t_successor_not_removed, t_remove_now,
             t_sysv_and_path, t_bad_arguments);
}
