#!/usr/bin/env bash
# `make demo` (tools/demo.sh): the writer and two readers through the scripted session, every
# line prefixed with its process, PASS at the end and nothing left; also over a stale segment
# and socket, and a clear failure (not a hang) when the socket path is taken by a plain file.
. "$(dirname "$0")/lib.sh"
# This tree's scripts, not an installed copy that would come first in the search path.
export SHMHOST_PATH="$SHMHOST_SRC/scripts:$SHMHOST_SRC/examples"

export DAY56_NAME="/day56_demo_$$"
export DAY56_SOCKET="/tmp/day56_demo_$$.sock"

demo() {
  OUT=$(timeout -k 2 60 bash "$SHMHOST_SRC/tools/demo.sh" "$SHMHOST" 2>&1); RC=$?
}

session() {
  demo
  expect_eq "$RC" 0 "demo exit status" || { echo "$OUT" >&2; return 1; }
  local id
  for id in reader1 reader2; do
    expect_eq "$(grep "^$id | " <<<"$OUT" | sed "s/^$id | //")" "[INFO] connected to writer
[INFO] received eventfd
[INFO] epoll wait start
[INFO] shm_data:
counter=2
message=hello shared memory
[INFO] shm_data:
counter=3
message=second
[INFO] writer shut down" "$id lines" || return 1
  done
  expect_eq "$(grep '^writer | ' <<<"$OUT" | grep -v '^writer | warning:' | sed 's/^writer | //')" \
"[INFO] shm_open success
[INFO] shared memory mapped
[INFO] socket created
[INFO] socket listen success
counter=3
message=second" "writer lines" || return 1
  expect_match "$OUT" '^demo \| nothing left' || return 1
  expect_match "$OUT" '^demo \| PASS$' || return 1
  [ ! -e "/dev/shm$DAY56_NAME" ] && [ ! -e "$DAY56_SOCKET" ] || fail "the demo left objects"
}

stale() {
  # What a killed writer leaves: a segment and a socket file nobody listens on.
  head -c 304 /dev/zero >"/dev/shm$DAY56_NAME"
  "$SHMHOST" -e 'local shm = require "shmhost"
    assert(shm.unix.listen{path = arg[1], keep = true})' "$DAY56_SOCKET" || return 1
  [ -S "$DAY56_SOCKET" ] || { fail "could not make a stale socket"; return 1; }
  session || return 1
  expect_match "$OUT" '^writer \| warning: .*stale segment' || return 1
  expect_match "$OUT" '^writer \| warning: .*stale socket' || return 1
}

blocked() {
  echo "not a socket" >"$DAY56_SOCKET"
  demo
  rm -f "$DAY56_SOCKET"
  expect_eq "$RC" 1 "demo exit status" || return 1
  expect_match "$OUT" 'FAIL' || return 1
  [ ! -e "/dev/shm$DAY56_NAME" ] || fail "the failed demo left the segment"
}

t "the scripted session" session
t "over a stale segment and socket" stale
t "a socket path taken by a file fails fast" blocked
rm -f "/dev/shm$DAY56_NAME" "$DAY56_SOCKET"
finish
