#!/usr/bin/env bash
# The course's sequence-number example end to end: seqnum_init creates the object with an
# initial value, seqnum_get shows and adds to it under the semaphore; concurrent processes lose
# no increment; a slow update makes the next process visibly wait; a holder killed with the
# semaphore taken makes the next one give up after --wait, and seqnum_init repairs that;
# --remove removes the object; bad arguments are usage errors.
source "$(dirname "$0")/lib.sh"

NAME="/${TAG}_seqnum"
FILE="/dev/shm/${NAME#/}"
bg=()
cleanup_all() {
  for p in "${bg[@]}"; do kill -KILL -- "-$p" 2>/dev/null; done
  rm -f "$FILE"
  rm -rf "$WORK"
}
trap cleanup_all EXIT

# Starts seqnum_get in a process group of its own with a deadline; output in $WORK/NAME.*
start_get() {
  local tag=$1; shift
  setsid timeout -k 2 30 "$SHMHOST" seqnum_get "$@" >"$WORK/$tag.out" 2>"$WORK/$tag.err" </dev/null &
  last=$!
  bg+=("$last")
}
wait_for() { # FILE PATTERN: up to 10 s
  for _ in $(seq 1 200); do grep -q -- "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
  fail "no line matching '$2' in $1: $(cat "$1")"
}
value_now() { # prints the current sequence number
  run_sh seqnum_get --name "$NAME" || return 1
  [ "$RC" -eq 0 ] || fail "seqnum_get: $RC $ERR"
  printf '%s' "$OUT" | sed -n 's/^Current value of sequence number: //p'
}

case_init_and_get() {
  run_sh seqnum_init "$NAME" 100
  expect_eq "$RC" 0 "init status ($ERR)" || return 1
  expect_eq "$OUT" "" "init prints nothing" || return 1
  [ -e "$FILE" ] || fail "the object stays after init" || return 1
  expect_eq "$(stat -c '%s %a' "$FILE")" "40 600" "size and mode" || return 1
  run_sh seqnum_get "$NAME"
  expect_eq "$RC" 0 "get status ($ERR)" || return 1
  expect_eq "$OUT" "Current value of sequence number: 100" || return 1
  run_sh seqnum_get --name "$NAME" --sleep 0 7
  expect_eq "$OUT" "Current value of sequence number: 100
Updated sequence number" || return 1
  expect_eq "$(value_now)" 107 "after adding 7" || return 1
  # Without INIT-VALUE the number starts at 0; init replaces an existing object.
  run_sh seqnum_init --name "$NAME"
  expect_eq "$RC" 0 || return 1
  expect_eq "$(value_now)" 0 "re-initialized" || return 1
}

case_concurrent_no_lost_increments() {
  run_sh seqnum_init "$NAME" 0
  local pids=() i
  for i in $(seq 1 10); do
    start_get "c$i" "$NAME" --sleep 0.01 "$i"
    pids+=("$last")
  done
  for p in "${pids[@]}"; do wait "$p" || fail "a seqnum_get failed" || return 1; done
  expect_eq "$(value_now)" 55 "1 + 2 + ... + 10" || return 1
  # Every process saw a different value: nobody read while another was updating.
  local seen
  seen=$(cat "$WORK"/c*.out | sed -n 's/^Current value of sequence number: //p' | sort -n | uniq | wc -l)
  expect_eq "$seen" 10 "distinct values seen" || return 1
}

case_second_process_visibly_waits() {
  run_sh seqnum_init "$NAME" 10
  start_get slow "$NAME" --sleep 1 5
  local slow=$last
  wait_for "$WORK/slow.out" "Current value of sequence number: 10"
  local t0=$(date +%s%N)
  run_sh seqnum_get "$NAME" --sleep 0 1
  local ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  expect_eq "$RC" 0 "second get ($ERR)" || return 1
  expect_match "$ERR" "waiting for $NAME" "stderr of the second" || return 1
  expect_match "$OUT" "^Current value of sequence number: 15" "the second sees the first's update" || return 1
  [ "$ms" -ge 300 ] || fail "the second did not wait (${ms} ms)" || return 1
  wait "$slow" || fail "the slow get failed" || return 1
  expect_eq "$(cat "$WORK/slow.out")" "Current value of sequence number: 10
Updated sequence number" || return 1
  expect_eq "$(cat "$WORK/slow.err")" "" "the first did not wait" || return 1
  expect_eq "$(value_now)" 16 || return 1
}

case_killed_holder() {
  run_sh seqnum_init "$NAME" 1
  start_get held "$NAME" --sleep 20 1
  local held=$last
  wait_for "$WORK/held.out" "Current value"
  kill -KILL -- "-$held"
  wait "$held" 2>/dev/null
  run_sh seqnum_get "$NAME" --wait 0.3
  expect_eq "$RC" 1 "gives up ($ERR)" || return 1
  expect_match "$ERR" "gave up after 0.3 s waiting for $NAME" || return 1
  run_sh seqnum_init "$NAME" 1
  expect_eq "$(value_now)" 1 "seqnum_init repairs it" || return 1
}

case_remove() {
  run_sh seqnum_init "$NAME"
  run_sh seqnum_init --remove "$NAME"
  expect_eq "$RC" 0 "remove ($ERR)" || return 1
  [ ! -e "$FILE" ] || fail "the object is still there" || return 1
  run_sh seqnum_init --remove --name "$NAME"
  expect_eq "$RC" 1 "second remove" || return 1
  expect_match "$ERR" "No such file" || return 1
  run_sh seqnum_get "$NAME"
  expect_eq "$RC" 1 "get without an object" || return 1
  expect_match "$ERR" "seqnum_init" "points at seqnum_init" || return 1
}

case_usage_errors() {
  local args
  for args in "seqnum_get $NAME 0" "seqnum_get $NAME -3" "seqnum_get $NAME abc" \
              "seqnum_get --sleep" "seqnum_get --wait x" "seqnum_get --bogus" \
              "seqnum_init noslash" "seqnum_init $NAME 1.5" "seqnum_init $NAME 99999999999" \
              "seqnum_init --remove $NAME 3" "seqnum_init --name"; do
    # shellcheck disable=SC2086
    run_sh $args
    expect_eq "$RC" 2 "status of '$args'" || return 1
    expect_match "$ERR" "usage:" "'$args'" || return 1
  done
  [ ! -e "$FILE" ] || fail "a usage error created the object" || return 1
}

t "init creates, get shows and adds" case_init_and_get
t "concurrent seqnum_get processes lose no increment" case_concurrent_no_lost_increments
t "with a run-length a second process visibly waits" case_second_process_visibly_waits
t "a holder killed with the semaphore taken: --wait gives up, init repairs" case_killed_holder
t "seqnum_init --remove" case_remove
t "usage errors" case_usage_errors
rm -f "$FILE"
finish
