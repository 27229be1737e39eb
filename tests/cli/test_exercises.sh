#!/usr/bin/env bash
# Every scripted exercise (examples/exercises/*.lua, whoever wrote it) run as a user runs it,
# `shmhost exercises/NAME`, with a deadline: it must exit 0 with PASS as its last line, leave
# no object with its pid in the name behind, and be listed by `shmhost -l` with a description.
# An exercise that fails shows its whole output.
. "$(dirname "$0")/lib.sh"

DEADLINE=${SHMHOST_EXERCISE_DEADLINE:-180}

# run_exercise NAME: runs it in its own process group under `timeout`, which kills the whole
# group (the exercise and any child it started) at the deadline.
run_exercise() {
  local name=$1 pidfile="$WORK/$1.pid" rc last left
  rm -f "$pidfile"
  # The shell records its pid and then becomes shmhost (exec keeps the pid), so the names the
  # exercise made (they carry its pid) can be looked for afterwards.
  setsid timeout -k 5 "$DEADLINE" bash -c 'echo $$ > "$1"; exec "$2" "exercises/$3"' _ \
    "$pidfile" "$SHMHOST" "$name" > "$WORK/$name.out" 2> "$WORK/$name.err" < /dev/null
  rc=$?
  last=$(tail -n 1 "$WORK/$name.out")
  if [ "$rc" -ne 0 ] || [[ "$last" != PASS* ]]; then
    echo "exit status $rc (124: deadline of ${DEADLINE} s), last line [$last]"
    echo "--- stdout"; cat "$WORK/$name.out"
    echo "--- stderr"; cat "$WORK/$name.err"
    return 1
  fi
  local pid
  pid=$(cat "$pidfile" 2>/dev/null)
  if [ -n "$pid" ]; then
    left=$(ls /dev/shm /tmp 2>/dev/null | grep -E "[^0-9]${pid}_" || true)
    if [ -n "$left" ]; then echo "left behind: $left"; return 1; fi
  fi
  # What it printed for a person, so a passing run shows the figures too.
  sed 's/^/    /' "$WORK/$name.out" >&2
}

# Each exercise has a one-line description: its first comment, shown by `shmhost -l`.
c_listed() {
  local list name f missing=""
  list=$("$SHMHOST" -l) || return 1
  for f in "$SHMHOST_SRC"/examples/exercises/*.lua; do
    name=$(basename "$f" .lua)
    grep -qE "^exercises/$name +[^ ]" <<<"$list" || missing="$missing $name"
  done
  [ -z "$missing" ] || fail "not listed with a description by shmhost -l:$missing"
}

# Misuse of an exercise's arguments is a usage message and status 2, not a traceback.
c_bad_arguments() {
  local ex
  for ex in "sysv_pingpong 0" "throughput_vs_pipe x" "seqnum_race 1" "ring_messages -3" "xfr_roundtrip 0" "offsets_not_pointers 0" "blocks_via_pipes 1 0"; do
    # shellcheck disable=SC2086
    run_sh 20 exercises/$ex
    [ "$RC" -eq 2 ] || fail "exercises/$ex: status $RC, expected 2 ($ERR)" || return 1
    expect_match "$ERR" "^usage: shmhost exercises/" "exercises/$ex stderr" || return 1
  done
}

count=0
for f in "$SHMHOST_SRC"/examples/exercises/*.lua; do
  name=$(basename "$f" .lua)
  t "exercises/$name" run_exercise "$name"
  count=$((count + 1))
done
[ "$count" -ge 15 ] || { echo "FAIL only $count exercises found"; _failed=$((_failed + 1)); }
t "every exercise is listed by shmhost -l" c_listed
t "bad exercise arguments are usage errors" c_bad_arguments
finish
