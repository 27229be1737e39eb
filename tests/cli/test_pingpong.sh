#!/usr/bin/env bash
# pingpong end to end: every --via prints its figures (round trips, rate, p50/p99/max) and the
# JSON form; message sizes from 0 to 100000 bytes come back byte for byte (the script checks
# every echo); usage errors exit 2; and killing either process mid-run ends the other within a
# second, with a message naming the dead one.
source "$(dirname "$0")/lib.sh"

figures() {
  local via=$1; shift
  run_sh 60 pingpong --via "$via" --count 2000 "$@"
  expect_eq "$RC" 0 "exit status" || { echo "$ERR" >&2; return 1; }
  expect_eq "$ERR" "" "stderr" || return 1
  expect_match "$OUT" "^pingpong via $via: 2000 round trips of [0-9]+ bytes in [0-9.]+ s" &&
  expect_match "$OUT" "rate: [0-9]+ round trips/s" &&
  expect_match "$OUT" "latency: p50 [0-9.]+ us, p99 [0-9.]+ us, max [0-9.]+ us"
}

json() {
  local via=$1
  run_sh 60 pingpong --via "$via" --count 500 --size 16 --json
  expect_eq "$RC" 0 "exit status" || { echo "$ERR" >&2; return 1; }
  expect_match "$OUT" '^\{"via":"'"$via"'","count":500,"size":16,"seconds":[0-9.]+,"rate":[0-9.]+,"p50_us":[0-9.]+,"p99_us":[0-9.]+,"max_us":[0-9.]+\}$' || return 1
  # p50 <= p99 <= max, as numbers.
  echo "$OUT" | awk -F'[:,}]' '{ if (!($12 + 0 <= $14 + 0 && $14 + 0 <= $16 + 0)) exit 1 }' ||
    fail "percentiles out of order: $OUT"
}

sizes() {
  local via=$1 size
  for size in 0 1 7 8 9 4096 100000; do
    run_sh 60 pingpong --via "$via" --count 50 --warmup 5 --size $size
    expect_eq "$RC" 0 "exit status with --size $size" || { echo "$ERR" >&2; return 1; }
    expect_match "$OUT" "50 round trips of $size bytes" || return 1
  done
}

for via in eventfd sem ring spin; do
  t "$via prints round trips, rate and latency percentiles" figures $via
  t "$via --json prints one object with ordered percentiles" json $via
  t "$via echoes messages of 0 to 100000 bytes" sizes $via
done

usage() {
  run_sh pingpong --via pipe
  expect_eq "$RC" 2 "exit status" && expect_match "$ERR" "--via must be" || return 1
  run_sh pingpong --count 0
  expect_eq "$RC" 2 "exit status" && expect_match "$ERR" "--count must be" || return 1
  run_sh pingpong --size -1
  expect_eq "$RC" 2 "exit status" || return 1
  run_sh pingpong --bogus
  expect_eq "$RC" 2 "exit status" && expect_match "$ERR" "unknown argument" || return 1
  run_sh pingpong --role pong
  expect_eq "$RC" 2 "exit status"
}
t "usage errors exit 2" usage

ms_now() { echo $(( $(date +%s%N) / 1000000 )); }
# child_of PID: the first child process of PID (waits for it to appear).
child_of() {
  local c i
  for i in $(seq 100); do c=$(pgrep -P "$1" | head -1); [ -n "$c" ] && { echo "$c"; return; }; sleep 0.05; done
  return 1
}
# gone PID: the process no longer runs (absent, or a zombie nobody has reaped yet).
gone() {
  [ ! -e "/proc/$1" ] && return 0
  local st; st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)
  [ -z "$st" ] || [ "$st" = Z ] || [ "$st" = X ]
}

# kill_mid VIA VICTIM: a run far too long to finish; after half a second VICTIM (ping or pong)
# gets SIGKILL and the other must end within a second.
kill_mid() {
  local via=$1 victim=$2
  timeout -k 2 30 "$SHMHOST" pingpong --via "$via" --count 100000000 --warmup 0 \
    > "$WORK/out" 2> "$WORK/err" & local tp=$!
  local ping pong
  ping=$(child_of $tp) && pong=$(child_of "$ping") || { kill $tp; fail "no processes"; return 1; }
  sleep 0.5
  gone "$pong" && { kill $tp; fail "pong ended early: $(cat "$WORK/err")"; return 1; }
  local t0 dt i rc=0
  if [ "$victim" = pong ]; then
    t0=$(ms_now)
    kill -KILL "$pong"
    wait $tp; rc=$?
    dt=$(( $(ms_now) - t0 ))
    expect_eq "$rc" 1 "exit status of ping" || { cat "$WORK/err" >&2; return 1; }
    expect_match "$(cat "$WORK/err")" "pong side \\(pid $pong\\) died" || return 1
  else
    t0=$(ms_now)
    kill -KILL "$ping"
    for i in $(seq 300); do gone "$pong" && break; sleep 0.01; done
    dt=$(( $(ms_now) - t0 ))
    wait $tp
    gone "$pong" || { kill -KILL "$pong"; fail "pong still runs 3 s after ping died"; return 1; }
    # pong's stderr is ping's, inherited: its last words are in the same file.
    expect_match "$(cat "$WORK/err")" "ping side \\(pid $ping\\) died" || return 1
  fi
  [ "$dt" -lt 1000 ] || fail "the survivor took $dt ms to end"
}
for via in eventfd sem ring spin; do
  t "$via: pong killed mid-run ends ping" kill_mid $via pong
  t "$via: ping killed mid-run ends pong" kill_mid $via ping
done

finish
