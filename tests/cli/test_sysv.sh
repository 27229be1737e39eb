#!/usr/bin/env bash
# The System V scenarios end to end (chapter 77 and its exercises): sysv_writer and
# sysv_reader print the chapter's lines with the same key and id, `ipcs -m` lists the segment
# while the writer holds it and not afterwards, the key file is created when missing,
# --struct exchanges SensorData, --mode sets the permissions, a segment left by a killed
# writer is healed with a warning, a live writer is never replaced, and a reader without a
# writer fails as the chapter says.
set -u
SHMHOST=${SHMHOST:-$(dirname "$0")/../../build/shmhost}
SRC=${SHMHOST_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
W="$SRC/scripts/sysv_writer.lua"
R="$SRC/scripts/sysv_reader.lua"
tag="shmh_sysv_$$"
dir=$(mktemp -d "/tmp/${tag}.XXXXXX")
pids=()
keys=()

cleanup() {
  for p in "${pids[@]}"; do kill -KILL -- "-$p" 2>/dev/null; done
  for k in "${keys[@]}"; do ipcrm -M "$k" 2>/dev/null; done
  rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for f in "$dir"/*.out "$dir"/*.err; do [ -s "$f" ] && { echo "--- $f" >&2; cat "$f" >&2; }; done; exit 1; }

# Starts a writer in a process group of its own with a deadline; output in $dir/NAME.{out,err}.
start_writer() {
  local name=$1; shift
  setsid timeout 30 "$SHMHOST" "$W" "$@" > "$dir/$name.out" 2> "$dir/$name.err" &
  last=$!
  pids+=("$last")
}
wait_for() { # FILE PATTERN: waits up to 10 s for a line matching PATTERN
  for _ in $(seq 1 200); do grep -q -- "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
  fail "no line matching '$2' in $1"
}
key_hex() { printf '0x%08x' $(( $1 & 0xffffffff )); }
listed() { ipcs -m | awk '{print $1}' | grep -qi "^$1\$"; }

# ---- 1. writer and reader, as in the chapter; the key file is created when missing.
kf="$dir/keyfile1"
start_writer w1 --keyfile "$kf" --wait 20
wpid=$last
wait_for "$dir/w1.out" "Waiting for reader"
[ -f "$kf" ] || fail "the writer did not create the key file"
grep -q "created key file $kf" "$dir/w1.err" || fail "the writer did not say it created the key file"
key=$(sed -n 's/^Writer: Generated key: \(-\{0,1\}[0-9]*\)$/\1/p' "$dir/w1.out")
[ -n "$key" ] || fail "no key line"
hex=$(key_hex "$key"); keys+=("$hex")
id=$(sed -n 's/^Writer: Shared memory segment created with ID: \([0-9]*\)$/\1/p' "$dir/w1.out")
listed "$hex" || fail "ipcs -m does not list $hex while the writer holds it"
ipcs -m | grep -i "^$hex" | awk '{exit !($4 == "600" && $5 == "1024")}' || fail "perms/size in ipcs: $(ipcs -m | grep -i "^$hex")"
timeout 20 "$SHMHOST" "$R" --keyfile "$kf" > "$dir/r1.out" 2> "$dir/r1.err" || fail "reader failed"
expect_r="Reader: Generated key: $key
Reader: Located shared memory segment with ID: $id
Reader: Shared memory attached at address: ADDR
Reader: Reading from shared memory...
Reader: Message received: \"Hello from the writer process!\"
Reader: Shared memory detached."
got_r=$(sed 's/address: 0x[0-9a-f]*$/address: ADDR/' "$dir/r1.out")
[ "$got_r" = "$expect_r" ] || fail "reader output differs:
$got_r"
t0=$(date +%s)
wait "$wpid" || fail "writer exited with $?"
[ $(( $(date +%s) - t0 )) -le 5 ] || fail "the writer did not end soon after the reader detached"
expect_w="Writer: Generated key: $key
Writer: Shared memory segment created with ID: $id
Writer: Shared memory attached at address: ADDR
Writer: Writing message to shared memory...
Writer: Message written. Waiting for reader...
Writer: Shared memory detached.
Writer: Shared memory segment marked for removal."
got_w=$(sed 's/address: 0x[0-9a-f]*$/address: ADDR/' "$dir/w1.out")
[ "$got_w" = "$expect_w" ] || fail "writer output differs:
$got_w"
listed "$hex" && fail "the segment $hex is still listed after the writer ended"
echo "ok   writer and reader as in the chapter"

# ---- 2. --struct SensorData, defaults and given values; --mode.
kf="$dir/keyfile2"
touch "$kf"
start_writer w2 --keyfile "$kf" --struct --mode 0640 --wait 20
wpid=$last
wait_for "$dir/w2.out" "Waiting for reader"
key=$(sed -n 's/^Writer: Generated key: \(-\{0,1\}[0-9]*\)$/\1/p' "$dir/w2.out")
hex=$(key_hex "$key"); keys+=("$hex")
ipcs -m | grep -i "^$hex" | awk '{exit !($4 == "640")}' || fail "--mode 0640 not applied: $(ipcs -m | grep -i "^$hex")"
timeout 20 "$SHMHOST" "$R" --keyfile "$kf" --struct > "$dir/r2.out" 2> "$dir/r2.err" || fail "struct reader failed"
grep -qx "sensor_id=101 value=98.6 status=OK" "$dir/r2.out" || fail "struct reader output"
wait "$wpid" || fail "struct writer failed"
start_writer w3 --keyfile "$kf" --struct --sensor-id -7 --value 2.5e-3 --status "DEGRADED" --wait 20
wpid=$last
wait_for "$dir/w3.out" "Waiting for reader"
timeout 20 "$SHMHOST" "$R" --keyfile "$kf" --struct > "$dir/r3.out" 2> "$dir/r3.err" || fail "struct reader failed"
grep -qx "sensor_id=-7 value=0.0025 status=DEGRADED" "$dir/r3.out" || fail "struct values"
wait "$wpid" || fail "struct writer failed"
listed "$hex" && fail "the struct segment is still listed"
echo "ok   --struct SensorData and --mode"

# ---- 3. no reader: the writer gives up after --wait and still removes the segment.
kf="$dir/keyfile4"
t0=$(date +%s%N)
timeout 20 "$SHMHOST" "$W" --keyfile "$kf" --wait 0.5 > "$dir/w4.out" 2> "$dir/w4.err" || fail "writer without reader failed"
t1=$(date +%s%N)
[ $(( (t1 - t0) / 1000000 )) -ge 450 ] || fail "the writer did not wait for --wait"
key=$(sed -n 's/^Writer: Generated key: \(-\{0,1\}[0-9]*\)$/\1/p' "$dir/w4.out")
hex=$(key_hex "$key"); keys+=("$hex")
grep -q "marked for removal" "$dir/w4.out" || fail "no removal line"
listed "$hex" && fail "segment left after --wait"
echo "ok   --wait without a reader"

# ---- 3b. Ctrl-C while waiting: exit 130 and the segment is removed all the same.
kf="$dir/keyfile4b"
start_writer w4b --keyfile "$kf" --wait 20
wpid=$last
wait_for "$dir/w4b.out" "Waiting for reader"
key=$(sed -n 's/^Writer: Generated key: \(-\{0,1\}[0-9]*\)$/\1/p' "$dir/w4b.out")
hex=$(key_hex "$key"); keys+=("$hex")
listed "$hex" || fail "segment not listed before SIGINT"
kill -INT -- "-$wpid"
wait "$wpid"
rc=$?
[ $rc -eq 130 ] || fail "writer interrupted by SIGINT exited $rc, expected 130"
listed "$hex" && fail "segment left after SIGINT"
echo "ok   SIGINT removes the segment"

# ---- 4. a writer killed before IPC_RMID leaves the segment (nattch 0); the next heals it.
kf="$dir/keyfile5"
start_writer w5 --keyfile "$kf" --wait 20
wpid=$last
wait_for "$dir/w5.out" "Waiting for reader"
key=$(sed -n 's/^Writer: Generated key: \(-\{0,1\}[0-9]*\)$/\1/p' "$dir/w5.out")
hex=$(key_hex "$key"); keys+=("$hex")
old=$(sed -n 's/^Writer: Shared memory segment created with ID: \([0-9]*\)$/\1/p' "$dir/w5.out")
kill -KILL -- "-$wpid"; wait "$wpid" 2>/dev/null
# The group's leader is reaped first; the killed shmhost may still be tearing down its mapping.
for _ in $(seq 100); do
  ipcs -m | grep -i "^$hex" | awk '{exit !($6 == "0")}' && break
  sleep 0.05
done
ipcs -m | grep -i "^$hex" | awk '{exit !($6 == "0")}' || fail "no stale segment with nattch 0 after kill"
start_writer w6 --keyfile "$kf" --wait 20
wpid=$last
wait_for "$dir/w6.out" "Waiting for reader"
grep -q "^warning: removing stale segment id $old" "$dir/w6.err" || fail "no warning about the stale segment"
new=$(sed -n 's/^Writer: Shared memory segment created with ID: \([0-9]*\)$/\1/p' "$dir/w6.out")
[ -n "$new" ] && [ "$new" != "$old" ] || fail "the stale segment was not replaced ($old -> $new)"

# ---- 5. while that writer is alive, another one refuses and leaves it alone.
timeout 20 "$SHMHOST" "$W" --keyfile "$kf" --wait 20 > "$dir/w7.out" 2> "$dir/w7.err"
rc=$?
[ $rc -eq 1 ] || fail "a second writer exited $rc, expected 1"
grep -q "in use by a live writer (pid [0-9]*" "$dir/w7.err" || fail "the refusal does not name the live writer"
grep -q "created with ID" "$dir/w7.out" && fail "the second writer created a segment"
timeout 20 "$SHMHOST" "$R" --keyfile "$kf" > "$dir/r6.out" 2> "$dir/r6.err" || fail "reader after healing failed"
grep -q "ID: $new" "$dir/r6.out" || fail "the reader did not find the healed writer's segment"
wait "$wpid" || fail "healed writer failed"
listed "$hex" && fail "segment left after healing"
echo "ok   stale segment healed with a warning, live writer refused"

# ---- 6. a reader with no writer fails the way the chapter says; a missing key file too.
kf="$dir/keyfile8"
touch "$kf"
timeout 20 "$SHMHOST" "$R" --keyfile "$kf" > "$dir/r8.out" 2> "$dir/r8.err"
rc=$?
[ $rc -eq 1 ] || fail "reader without writer exited $rc"
grep -q "shmget.*No such file or directory" "$dir/r8.err" || fail "reader error"
grep -q "Is the writer process running?" "$dir/r8.err" || fail "reader hint"
timeout 20 "$SHMHOST" "$R" --keyfile "$dir/missing" > "$dir/r9.out" 2> "$dir/r9.err"
[ $? -eq 1 ] || fail "reader with a missing key file"
grep -q "ftok.*No such file or directory" "$dir/r9.err" || fail "ftok error"
[ -e "$dir/missing" ] && fail "the reader created the key file"
timeout 20 "$SHMHOST" "$W" --bogus > /dev/null 2> "$dir/w10.err"
[ $? -eq 2 ] || fail "unknown option should exit 2"
grep -q "unknown option '--bogus'" "$dir/w10.err" || fail "unknown option message"
echo "ok   reader without writer, missing key file, bad option"
