#!/usr/bin/env bash
# The Day56 exercises (examples/exercises/day56_*.lua) run to PASS, end with status 0 and
# leave nothing behind: each spawns writers, readers or helper processes of its own.
. "$(dirname "$0")/lib.sh"
# This tree's scripts, not an installed copy that would come first in the search path.
export SHMHOST_PATH="$SHMHOST_SRC/scripts:$SHMHOST_SRC/examples"

# Objects are named after the exercise and its pid (day56_readers_PID...): the pid comes
# first on stdout, from the shell that then becomes shmhost, so only this run's are looked for.
exercise() {
  local name=$1
  shift
  OUT=$(timeout -k 2 60 bash -c 'echo "pid $$"; exec "$SHMHOST" "$@"' _ "exercises/$name" "$@" \
        2>"$WORK/err" </dev/null)
  RC=$?
  ERR=$(cat "$WORK/err")
  expect_eq "$RC" 0 "$name exit status" || { printf '%s\n%s\n' "$OUT" "$ERR" >&2; return 1; }
  expect_match "$OUT" '^PASS: ' "$name output" || return 1
  local pid
  pid=$(sed -n '1s/^pid //p' <<<"$OUT")
  local left
  left=$(ls /dev/shm /tmp | grep -E "^${name}_${pid}(\.sock|_.*)?$")
  [ -z "$left" ] || { fail "$name left: $left"; return 1; }
}

t "several readers" exercise day56_readers 3
t "SOCK_SEQPACKET" exercise day56_seqpacket
t "abstract socket" exercise day56_abstract
t "shared ring buffer" exercise day56_ring 500
t "no mutex: torn reads" exercise day56_no_mutex 0.3
t "usage errors exit 2" bash -c '"$SHMHOST" exercises/day56_readers 0 2>/dev/null; [ $? -eq 2 ] &&
  "$SHMHOST" exercises/day56_no_mutex -1 2>/dev/null; [ $? -eq 2 ]'
finish
