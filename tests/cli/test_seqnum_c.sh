#!/usr/bin/env bash
# The sequence-number scenarios against C programs written the classic way (struct shmbuf
# { sem_t sem; int seqnum; } mapped from shm_open, sem_init/sem_wait/sem_post): a C init that a
# script reads, a script init that a C program reads, and C and script processes adding at the
# same time under the one semaphore without losing an increment.
source "$(dirname "$0")/lib.sh"

NAME="/${TAG}_seqc"
FILE="/dev/shm/${NAME#/}"
trap 'rm -f "$FILE"; rm -rf "$WORK"' EXIT

CC=${CC:-cc}
if ! command -v "$CC" >/dev/null 2>&1; then
  echo "skipped: no C compiler ($CC)"
  exit 0
fi

cat > "$WORK/seq.c" <<'EOF'
/* seq init NAME VALUE | seq get NAME [ADD]: a C peer of seqnum_init and seqnum_get. */
#include <fcntl.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct shmbuf {
  sem_t sem;
  int seqnum;
};

int main(int argc, char **argv) {
  if (argc < 3) return 2;
  int init = strcmp(argv[1], "init") == 0;
  if (init) shm_unlink(argv[2]);
  int fd = shm_open(argv[2], init ? O_CREAT | O_EXCL | O_RDWR : O_RDWR, 0600);
  if (fd < 0) { perror("shm_open"); return 1; }
  if (init && ftruncate(fd, sizeof(struct shmbuf)) < 0) { perror("ftruncate"); return 1; }
  struct shmbuf *p = mmap(NULL, sizeof *p, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) { perror("mmap"); return 1; }
  close(fd);
  if (init) {
    if (sem_init(&p->sem, 1, 1) < 0) { perror("sem_init"); return 1; }
    p->seqnum = argc > 3 ? atoi(argv[3]) : 0;
    return 0;
  }
  if (sem_wait(&p->sem) < 0) { perror("sem_wait"); return 1; }
  printf("Current value of sequence number: %d\n", p->seqnum);
  if (argc > 3) {
    int v = p->seqnum;
    usleep(2000); /* a slow update, so that peers really wait */
    p->seqnum = v + atoi(argv[3]);
  }
  if (sem_post(&p->sem) < 0) { perror("sem_post"); return 1; }
  return 0;
}
EOF
"$CC" -O1 -o "$WORK/seq" "$WORK/seq.c" -pthread || { echo "FAIL cannot compile the C peer"; exit 1; }

case_c_init_script_get() {
  timeout 10 "$WORK/seq" init "$NAME" 41 || fail "C init failed" || return 1
  run_sh seqnum_get "$NAME" --sleep 0 1
  expect_eq "$RC" 0 "script get ($ERR)" || return 1
  expect_eq "$OUT" "Current value of sequence number: 41
Updated sequence number" || return 1
  expect_eq "$(timeout 10 "$WORK/seq" get "$NAME")" "Current value of sequence number: 42" || return 1
}

case_script_init_c_get() {
  run_sh seqnum_init "$NAME" 7
  expect_eq "$RC" 0 "script init ($ERR)" || return 1
  expect_eq "$(timeout 10 "$WORK/seq" get "$NAME" 3)" "Current value of sequence number: 7" || return 1
  run_sh seqnum_get "$NAME"
  expect_eq "$OUT" "Current value of sequence number: 10" || return 1
}

case_mixed_concurrent() {
  run_sh seqnum_init "$NAME" 0
  local pids=() i
  for i in $(seq 1 6); do
    timeout 30 "$WORK/seq" get "$NAME" 1 >/dev/null & pids+=($!)
    timeout 30 "$SHMHOST" seqnum_get "$NAME" --sleep 0.002 1 >/dev/null 2>&1 & pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || fail "a process failed" || return 1; done
  run_sh seqnum_get "$NAME"
  expect_eq "$OUT" "Current value of sequence number: 12" "no increment lost" || return 1
}

t "a C init, read by seqnum_get" case_c_init_script_get
t "seqnum_init, read and added to by C" case_script_init_c_get
t "C and script processes add at once without losing an increment" case_mixed_concurrent
rm -f "$FILE"
finish
