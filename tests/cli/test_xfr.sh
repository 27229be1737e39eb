#!/usr/bin/env bash
# xfr_writer | xfr_reader end to end: stdin reaches stdout byte for byte (cmp) for 0, 1,
# block-1, block, block+1, 3 MiB+7 and 256 MiB of random bytes, through two semaphores and
# through the ring, with the reader started before and after the writer; input from a pipe;
# the progress line on a terminal only; usage errors, a missing writer, --ring on one side, a
# stale object; and either side killed mid-transfer (even with the reader's output stuck),
# which ends the other within a second. Nothing may be left in /dev/shm. The 256 MiB case is
# skipped under a sanitizer build (found by ldd, or forced with SHMHOST_SKIP_LARGE=1) where it
# would take minutes.
source "$(dirname "$0")/lib.sh"
NAME="/${TAG}_xfr"
BLOCK=4096
large=1
if [ -n "${SHMHOST_SKIP_LARGE:-}" ] || ldd "$SHMHOST" 2>/dev/null | grep -q libasan; then large=0; fi

# xfer SIZE ORDER [--ring] [--block N]: one transfer of SIZE random bytes.
xfer() {
  local size=$1 order=$2; shift 2
  local in="$WORK/in" out="$WORK/out" rp wp rrc wrc
  head -c "$size" /dev/urandom > "$in"
  : > "$out"
  if [ "$order" = reader-first ]; then
    timeout -k 2 120 "$SHMHOST" xfr_reader --name "$NAME" "$@" > "$out" 2> "$WORK/r.err" & rp=$!
    sleep 0.2
    timeout -k 2 120 "$SHMHOST" xfr_writer --name "$NAME" "$@" < "$in" 2> "$WORK/w.err"; wrc=$?
    wait "$rp"; rrc=$?
  else
    timeout -k 2 120 "$SHMHOST" xfr_writer --name "$NAME" "$@" < "$in" 2> "$WORK/w.err" & wp=$!
    sleep 0.2
    timeout -k 2 120 "$SHMHOST" xfr_reader --name "$NAME" "$@" > "$out" 2> "$WORK/r.err"; rrc=$?
    wait "$wp"; wrc=$?
  fi
  [ "$wrc" = 0 ] || fail "writer exited $wrc: $(cat "$WORK/w.err")"
  [ "$rrc" = 0 ] || fail "reader exited $rrc: $(cat "$WORK/r.err")"
  [ ! -s "$WORK/w.err" ] && [ ! -s "$WORK/r.err" ] ||
    fail "stderr not empty: $(cat "$WORK/w.err" "$WORK/r.err")"
  cmp "$in" "$out" || fail "output differs from input ($size bytes)"
  [ ! -e "/dev/shm${NAME}" ] || fail "/dev/shm${NAME} left behind"
  rm -f "$in" "$out"
}

for mode in sem ring; do
  flag=(); [ $mode = ring ] && flag=(--ring)
  for order in writer-first reader-first; do
    for size in 0 1 $((BLOCK - 1)) $BLOCK $((BLOCK + 1)) $((3 * 1048576 + 7)); do
      t "$mode $order $size bytes, block $BLOCK" xfer $size $order "${flag[@]}" --block $BLOCK
    done
  done
  # The default block (65536) and its edges.
  for size in 65535 65536 65537; do
    t "$mode default block, $size bytes" xfer $size writer-first "${flag[@]}"
  done
  if [ $large = 1 ]; then
    t "$mode 256 MiB, writer first" xfer $((256 * 1048576)) writer-first "${flag[@]}"
    t "$mode 256 MiB, reader first" xfer $((256 * 1048576)) reader-first "${flag[@]}"
  else
    echo "skip $mode 256 MiB (sanitizer build or SHMHOST_SKIP_LARGE)"
  fi
done

# Input from a pipe (read through the loop, not a file), in small pieces.
pipe_in() {
  head -c 300000 /dev/urandom > "$WORK/in"
  timeout -k 2 60 "$SHMHOST" xfr_reader --name "$NAME" "$@" > "$WORK/out" 2> "$WORK/r.err" & local rp=$!
  dd if="$WORK/in" bs=7777 status=none |
    timeout -k 2 60 "$SHMHOST" xfr_writer --name "$NAME" "$@" 2> "$WORK/w.err" || fail "writer: $(cat "$WORK/w.err")"
  wait $rp || fail "reader: $(cat "$WORK/r.err")"
  cmp "$WORK/in" "$WORK/out"
}
t "stdin from a pipe, semaphores" pipe_in --block 1000
t "stdin from a pipe, ring" pipe_in --block 1000 --ring

# Misuse and waiting.
no_writer() {
  run_sh 10 xfr_reader --name "$NAME" --wait 0.3
  expect_eq "$RC" 1 "exit status"
  expect_match "$ERR" "no writer on $NAME after 0.3 s"
}
t "reader without a writer gives up after --wait" no_writer

mismatch() {
  timeout -k 2 20 "$SHMHOST" xfr_writer --name "$NAME" --ring < /dev/null 2> "$WORK/w.err" & local wp=$!
  run_sh 10 xfr_reader --name "$NAME"
  expect_eq "$RC" 1 "exit status" && expect_match "$ERR" "give --ring to both sides" || return 1
  timeout -k 2 10 "$SHMHOST" xfr_reader --name "$NAME" --ring > /dev/null || return 1
  wait $wp
}
t "--ring on one side only is refused" mismatch

usage() {
  run_sh xfr_writer --block 0
  expect_eq "$RC" 2 "exit status" && expect_match "$ERR" "--block must be" || return 1
  run_sh xfr_reader --bogus
  expect_eq "$RC" 2 "exit status" && expect_match "$ERR" "unknown argument" || return 1
  run_sh xfr_writer --name bad/name
  expect_eq "$RC" 2 "exit status"
}
t "usage errors exit 2" usage

stale() {
  # A leftover object with no live writer is replaced with a warning.
  "$SHMHOST" -e 'assert(require("shmhost").open(arg[1], {create = true, size = 4096, keep = true})):close()' "$NAME" || return 1
  timeout -k 2 20 "$SHMHOST" xfr_reader --name "$NAME" > "$WORK/out" 2> "$WORK/r.err" & local rp=$!
  echo "fresh data" | timeout -k 2 20 "$SHMHOST" xfr_writer --name "$NAME" 2> "$WORK/w.err" || return 1
  wait $rp || return 1
  expect_match "$(cat "$WORK/w.err")" "warning: replacing stale $NAME" &&
  expect_eq "$(cat "$WORK/out")" "fresh data" && [ ! -e "/dev/shm$NAME" ]
}
t "a stale object is replaced with a warning" stale

# A peer that breaks the protocol: a count larger than the block it announced, or a ring
# message larger than a block. The reader refuses the data with a message, writes none of it,
# and removes nothing it did not create (the fake writer removes its object at exit).
hostile() {
  local mode=$1
  timeout -k 2 20 "$SHMHOST" -e '
    package.path = arg[1] .. "/scripts/lib/?.lua;" .. package.path
    local X, shm = require "xfr", require "shmhost"
    local mode = arg[3] == "ring" and X.MODE_RING or X.MODE_SEM
    local seg = assert(shm.open(arg[2], {create = true, size = X.segment_size(mode, 16)}))
    for f, v in pairs{writer_pid = shm.pid(), mode = mode, block = 16, cnt = 1000} do
      seg:store("i32", X.off(f), v)
    end
    if mode == X.MODE_SEM then
      shm.sem(seg, X.off("wsem")):init(0)
      shm.sem(seg, X.off("rsem")):init(1)
    else
      assert(shm.ring.create(seg, X.DATA, X.ring_capacity(16)):push(string.rep("x", 17)))
    end
    seg:store("i32", X.off("ready"), 1)
    shm.sleep(5)' "$SHMHOST_SRC" "$NAME" "$mode" & local fp=$!
  local rflag=(); [ "$mode" = ring ] && rflag=(--ring)
  run_sh 20 xfr_reader --name "$NAME" "${rflag[@]}" > "$WORK/out"
  kill $fp 2>/dev/null; wait $fp 2>/dev/null
  expect_eq "$RC" 1 "exit status" || return 1
  expect_match "$ERR" "bad block count 1000 \\(block is 16\\)|message of 17 bytes, more than a block" &&
  expect_eq "$OUT" "" "output"
}
t "a writer that sends a count past its block is refused" hostile sem
t "a writer that sends a ring message past its block is refused" hostile ring

# The progress line: on stderr when it is a terminal (script(1) gives the writer a pseudo
# terminal), never otherwise (the transfers above require an empty stderr).
progress() {
  command -v script > /dev/null || { echo "script(1) missing: not checked"; return 0; }
  head -c 3145735 /dev/urandom > "$WORK/in"
  timeout -k 2 60 "$SHMHOST" xfr_reader --name "$NAME" > "$WORK/out" 2> "$WORK/r.err" & local rp=$!
  local tty
  tty=$(timeout -k 2 60 script -qec "'$SHMHOST' xfr_writer --name '$NAME' < '$WORK/in'" /dev/null) ||
    fail "writer under script failed: $tty" || return 1
  wait $rp || fail "reader: $(cat "$WORK/r.err")" || return 1
  cmp "$WORK/in" "$WORK/out" || return 1
  expect_match "$(printf '%s' "$tty" | tr '\r' '\n')" "^3145735 bytes +[0-9.]+ MiB/s +[0-9.]+ s" "progress"
}
t "a progress line on a terminal" progress

# A peer killed mid-transfer: the other side exits 1 within a second, says which peer died,
# and the object is gone (the writer's cleanup removes it; after a killed writer, the reader
# does). The writer's input is a FIFO that stays open, so both sides are mid-stream, waiting.
ms_now() { echo $(( $(date +%s%N) / 1000000 )); }
# child_of PID: the shmhost that `timeout` (PID) runs.
child_of() {
  local c i
  for i in $(seq 50); do c=$(pgrep -P "$1" | head -1); [ -n "$c" ] && { echo "$c"; return; }; sleep 0.05; done
  return 1
}
death() {
  local victim=$1 sig=$2; shift 2
  rm -f "$WORK/fifo"; mkfifo "$WORK/fifo"
  ( head -c 100000 /dev/urandom; exec sleep 30 ) > "$WORK/fifo" & local feeder=$!
  timeout -k 2 30 "$SHMHOST" xfr_writer --name "$NAME" "$@" < "$WORK/fifo" 2> "$WORK/w.err" & local wt=$!
  timeout -k 2 30 "$SHMHOST" xfr_reader --name "$NAME" "$@" > "$WORK/out" 2> "$WORK/r.err" & local rt=$!
  local wp rp i rc=0
  wp=$(child_of $wt) && rp=$(child_of $rt) || { kill $feeder $wt $rt; fail "no processes"; return 1; }
  for i in $(seq 200); do
    [ "$(stat -c %s "$WORK/out")" -ge 65536 ] && break
    sleep 0.05
  done
  local killed=$wp other=$rt other_err="$WORK/r.err" who=writer
  if [ "$victim" = reader ]; then killed=$rp other=$wt other_err="$WORK/w.err" who=reader; fi
  local t0; t0=$(ms_now)
  kill "-$sig" "$killed"
  wait "$other"; rc=$?
  local dt=$(( $(ms_now) - t0 ))
  kill $feeder 2>/dev/null; wait $feeder $wt $rt 2>/dev/null
  expect_eq "$rc" 1 "exit status of the survivor" || { cat "$other_err" >&2; return 1; }
  expect_match "$(cat "$other_err")" "$who \\(pid $killed\\) (died|stopped)" || return 1
  [ "$dt" -lt 1000 ] || fail "survivor took $dt ms to notice" || return 1
  [ ! -e "/dev/shm${NAME}" ] || fail "/dev/shm${NAME} left behind"
}
# The reader's output goes to a pipe nobody reads: it cannot finish, but it still notices a
# writer killed meanwhile, because stdout is written through the loop.
stuck() {
  rm -f "$WORK/fifo" "$WORK/sink"; mkfifo "$WORK/fifo" "$WORK/sink"
  ( head -c 3000000 /dev/urandom; exec sleep 30 ) > "$WORK/fifo" & local feeder=$!
  ( exec sleep 30 ) < "$WORK/sink" & local sink=$!
  timeout -k 2 30 "$SHMHOST" xfr_writer --name "$NAME" "$@" < "$WORK/fifo" 2> "$WORK/w.err" & local wt=$!
  timeout -k 2 30 "$SHMHOST" xfr_reader --name "$NAME" "$@" > "$WORK/sink" 2> "$WORK/r.err" & local rt=$!
  local wp rc
  wp=$(child_of $wt) || { kill $feeder $sink $wt $rt; fail "no writer"; return 1; }
  sleep 1
  local t0; t0=$(ms_now)
  kill -KILL "$wp"
  wait "$rt"; rc=$?
  local dt=$(( $(ms_now) - t0 ))
  kill $feeder $sink 2>/dev/null; wait $feeder $sink $wt 2>/dev/null
  expect_eq "$rc" 1 "exit status of the reader" || { cat "$WORK/r.err" >&2; return 1; }
  expect_match "$(cat "$WORK/r.err")" "writer \\(pid $wp\\) died" || return 1
  [ "$dt" -lt 1000 ] || fail "the reader took $dt ms to notice" || return 1
  [ ! -e "/dev/shm${NAME}" ] || fail "/dev/shm${NAME} left behind"
}
for mode in sem ring; do
  flag=(); [ $mode = ring ] && flag=(--ring)
  t "$mode: writer killed (SIGKILL) mid-transfer ends the reader" death writer KILL "${flag[@]}"
  t "$mode: writer killed (SIGTERM) mid-transfer ends the reader" death writer TERM "${flag[@]}"
  t "$mode: reader killed mid-transfer ends the writer" death reader KILL "${flag[@]}"
  t "$mode: a reader whose output is stuck still notices a killed writer" stuck "${flag[@]}"
done

finish
