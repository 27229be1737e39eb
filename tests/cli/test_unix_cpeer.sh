#!/usr/bin/env bash
# The wire is plain SCM_RIGHTS plus the script's bytes: a C peer written the classic way (the
# lab's recvmsg/sendmsg with a cmsghdr, no shmhost code) receives a memfd and an eventfd from a
# shmhost listener, writes into the segment and notifies, and sends descriptors of its own
# back, which the script receives typed.
. "$(dirname "$0")/lib.sh"

if ! command -v cc >/dev/null 2>&1; then
  echo "SKIP: no C compiler to build the classic peer"
  exit 0
fi

SOCK="/tmp/${TAG}_cpeer.sock"

cat > "$WORK/peer.c" <<'EOF'
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int die(const char *what) { perror(what); return 1; }

int main(int argc, char **argv) {
  int s = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  strncpy(a.sun_path, argv[1], sizeof a.sun_path - 1);
  if (connect(s, (struct sockaddr *)&a, sizeof a) < 0) return die("connect");

  char data[64];
  union { char buf[CMSG_SPACE(2 * sizeof(int))]; struct cmsghdr align; } ctrl;
  struct iovec iov = {data, sizeof data};
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctrl.buf,
                     .msg_controllen = sizeof ctrl.buf};
  ssize_t n = recvmsg(s, &m, 0);
  if (n <= 0) return die("recvmsg");
  struct cmsghdr *c = CMSG_FIRSTHDR(&m);
  if (!c || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(2 * sizeof(int))) {
    fprintf(stderr, "expected two descriptors\n");
    return 1;
  }
  int fds[2];
  memcpy(fds, CMSG_DATA(c), sizeof fds);
  char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], 0);
  if (p == MAP_FAILED) return die("mmap");
  snprintf(p, 64, "from C: %.*s", (int)n, data);
  uint64_t one = 1;
  if (write(fds[1], &one, sizeof one) != sizeof one) return die("write eventfd");

  int mine[2];
  mine[0] = eventfd(5, 0);
  int pp[2];
  if (mine[0] < 0 || pipe(pp) < 0) return die("eventfd/pipe");
  mine[1] = pp[0];
  union { char buf[CMSG_SPACE(2 * sizeof(int))]; struct cmsghdr align; } out;
  memset(&out, 0, sizeof out);
  struct iovec oiov = {"c", 1};
  struct msghdr om = {.msg_iov = &oiov, .msg_iovlen = 1, .msg_control = out.buf,
                      .msg_controllen = sizeof out.buf};
  struct cmsghdr *oc = CMSG_FIRSTHDR(&om);
  oc->cmsg_level = SOL_SOCKET;
  oc->cmsg_type = SCM_RIGHTS;
  oc->cmsg_len = CMSG_LEN(2 * sizeof(int));
  memcpy(CMSG_DATA(oc), mine, sizeof mine);
  if (sendmsg(s, &om, 0) != 1) return die("sendmsg");
  if (write(pp[1], "piped", 5) != 5) return die("write pipe");
  /* Wait for the script to hang up. */
  while (read(s, data, sizeof data) > 0) {}
  return 0;
}
EOF

c_classic_peer() {
  cc -std=c11 -Wall -Wextra -o "$WORK/peer" "$WORK/peer.c" || fail "the peer does not compile" || return 1
  timeout -k 2 20 "$SHMHOST" -e '
    local shm = require "shmhost"
    local srv = assert(shm.unix.listen{path = arg[1]})
    print("ready")
    local c = assert(srv:accept())
    local seg = assert(shm.memfd("cpeer", {size = 4096}))
    local ev = assert(shm.eventfd())
    assert(c:send("hello", {seg, ev}) == 5)
    print("woken", ev:wait())
    print(seg:read(0, 13))
    local b, objs = assert(c:recv())
    print(b, #objs, getmetatable(objs[1]).__name, objs[1]:try(), getmetatable(objs[2]).__name,
          objs[2]:stat().type)
    local uv = require "luv"
    print(uv.fs_read(objs[2]:fd(), 5))
    c:close()
    srv:close()' "$SOCK" >"$WORK/out" 2>"$WORK/err" &
  local pid=$!
  for _ in $(seq 200); do [ -s "$WORK/out" ] && break; sleep 0.05; done
  timeout -k 2 20 "$WORK/peer" "$SOCK" 2>"$WORK/peer.err"; local prc=$?
  wait "$pid"; local rc=$?
  expect_eq "$prc" 0 "peer status: $(cat "$WORK/peer.err")" || return 1
  expect_eq "$rc" 0 "script status: $(cat "$WORK/err")" || return 1
  expect_eq "$(cat "$WORK/out")" "ready
woken	1
from C: hello
c	2	shmhost.eventfd	5	shmhost.fd	fifo
piped" "script output" || return 1
  [ ! -e "$SOCK" ] || fail "$SOCK left behind"
}

t "a classic C peer exchanges descriptors with a script" c_classic_peer
rm -f "$SOCK"
finish
