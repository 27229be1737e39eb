#!/usr/bin/env bash
# `shmhost cat` and `shmhost rm` by name, System V id and key: byte-exact dumps (raw, ranges,
# and --hex the same as hexdump -C), clear errors with status 1 for what does not exist or is
# out of range, usage errors with status 2; and `shmhost -l` describes ls, cat and rm.
. "$(dirname "$0")/lib.sh"

NAME="/${TAG}_cat"
KEY=$(printf '0x%08x' $(( 0x53600000 | ($$ & 0xfffff) )))

cleanup_all() {
  rm -f "/dev/shm$NAME" "/dev/shm/${TAG}_rm1" "/dev/shm/${TAG}_rm2" "/dev/shm/sem.${TAG}_sem"
  ipcrm -M "$KEY" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup_all EXIT

# A POSIX segment of 5000 bytes: text at 0, binary bytes at 100, "ab" repeated from 4000; and
# a System V segment under KEY with a message. Both kept, so they outlive the creating process.
run_sh -e '
  local shm = require "shmhost"
  local s = assert(shm.open(arg[1], {create = true, size = 5000, keep = true}))
  s:write(0, "hello world\n")
  local b = {}
  for i = 0, 255 do b[#b + 1] = string.char(i) end
  s:write(100, table.concat(b))
  s:write(4000, string.rep("ab", 300))
  local v = assert(shm.sysv(tonumber(arg[2]), {create = true, size = 1024, keep = true}))
  v:write(0, "from sysv")
  print(v.id)
' "$NAME" "$KEY"
[ "$RC" -eq 0 ] || { echo "setup failed: $ERR"; exit 1; }
ID=$OUT

c_raw() {
  "$SHMHOST" cat "$NAME" > "$WORK/all" || return 1
  cmp "$WORK/all" "/dev/shm$NAME" || fail "raw dump differs from the object"
}

c_range() {
  run_sh cat "$NAME" --offset 6 --length 5
  expect_eq "$OUT" "world" || return 1
  "$SHMHOST" cat "${NAME#/}" --offset 100 --length 256 > "$WORK/bin"
  cmp "$WORK/bin" <(tail -c +101 "/dev/shm$NAME" | head -c 256) || fail "binary range differs"
}

c_hex() {
  local args
  for args in "" "-s 3 -n 70" "-s 90 -n 300" "-s 4990" "-s 4999 -n 1" "-s 0 -n 0"; do
    set -- $args
    diff <(hexdump -C $args "/dev/shm$NAME") \
         <("$SHMHOST" cat "$NAME" --hex --offset "${2:-0}" ${4:+--length "$4"}) ||
      fail "hex dump differs from hexdump -C $args" || return 1
  done
}

c_sysv() {
  run_sh cat "$ID" --length 9
  expect_eq "$OUT" "from sysv" "by id" || return 1
  run_sh cat "$KEY" --length 9
  expect_eq "$OUT" "from sysv" "by key" || return 1
  "$SHMHOST" cat "$ID" | wc -c | grep -qx 1024 || fail "whole System V segment"
}

c_cat_errors() {
  run_sh cat "/${TAG}_nosuch"
  expect_eq "$RC" 1 status && expect_eq "$ERR" "cat: shm_open /${TAG}_nosuch: No such file or directory" || return 1
  run_sh cat "$NAME" --offset 5001
  expect_eq "$RC" 1 status && expect_eq "$ERR" "cat: offset 5001 is past the end of $NAME (5000 bytes)" || return 1
  run_sh cat "$NAME" --offset 4990 --length 11
  expect_eq "$RC" 1 status && expect_match "$ERR" "offset 4990 \+ length 11 is past the end" || return 1
  run_sh cat 2147483000
  expect_eq "$RC" 1 status && expect_match "$ERR" "^cat: shmat 2147483000: " || return 1
  run_sh cat "$NAME" --length -3
  expect_eq "$RC" 2 status && expect_match "$ERR" "needs a non-negative integer" || return 1
  run_sh cat
  expect_eq "$RC" 2 status && expect_match "$ERR" "^usage: shmhost cat" || return 1
  run_sh cat a b
  expect_eq "$RC" 2 status && expect_match "$ERR" "unexpected argument 'b'"
}

c_cat_never_writes() {
  local before
  before=$(md5sum < "/dev/shm$NAME")
  "$SHMHOST" cat "$NAME" --hex > /dev/null
  expect_eq "$(md5sum < "/dev/shm$NAME")" "$before" "contents after cat"
}

c_rm() {
  run_sh -e '
    local shm = require "shmhost"
    for _, n in ipairs({arg[1], arg[2]}) do assert(shm.open(n, {create = true, size = 10, keep = true})) end
  ' "/${TAG}_rm1" "/${TAG}_rm2"
  # A named semaphore lives in /dev/shm as sem.NAME; made here without the semaphore API.
  : > "/dev/shm/sem.${TAG}_sem"
  run_sh rm "/${TAG}_rm1" "${TAG}_rm2" "/${TAG}_sem" "$KEY"
  expect_eq "$RC" 0 status || { echo "$ERR"; return 1; }
  expect_eq "$OUT" "removed posix /${TAG}_rm1
removed posix /${TAG}_rm2
removed sem /${TAG}_sem
removed sysv $KEY (id $ID)" || return 1
  [ ! -e "/dev/shm/${TAG}_rm1" ] && [ ! -e "/dev/shm/${TAG}_rm2" ] && [ ! -e "/dev/shm/sem.${TAG}_sem" ] ||
    fail "objects still there"
  ! ipcs -m | awk '{print $2}' | grep -qx "$ID" || fail "System V segment still there"
}

c_rm_by_id() {
  run_sh -e 'print(assert(require("shmhost").sysv(require("shmhost").IPC_PRIVATE, {size = 10, keep = true})).id)'
  local id=$OUT
  run_sh rm "$id"
  expect_eq "$RC" 0 status && expect_eq "$OUT" "removed sysv 0x00000000 (id $id)"
}

c_rm_errors() {
  run_sh rm "/${TAG}_nosuch" "$NAME"
  expect_eq "$RC" 1 status && expect_eq "$ERR" "rm: shm_unlink /${TAG}_nosuch: No such file or directory" &&
    expect_eq "$OUT" "removed posix $NAME" "the other target is still removed" || return 1
  run_sh rm "a/b"
  expect_eq "$RC" 1 status && expect_match "$ERR" "is not a POSIX name" || return 1
  run_sh rm
  expect_eq "$RC" 2 status && expect_match "$ERR" "^usage: shmhost rm" || return 1
  run_sh rm --stale "/x"
  expect_eq "$RC" 2 status || return 1
  run_sh rm /x --match y
  expect_eq "$RC" 2 status && expect_match "$ERR" "--match goes with --stale"
}

c_list() {
  run_sh -l
  expect_match "$OUT" "^ls +List POSIX" && expect_match "$OUT" "^cat +Dump a shared-memory segment" &&
    expect_match "$OUT" "^rm +Remove shared-memory objects"
}

t "cat dumps the raw bytes" c_raw
t "cat --offset --length" c_range
t "cat --hex matches hexdump -C" c_hex
t "cat a System V segment by id and by key" c_sysv
t "cat errors" c_cat_errors
t "cat never changes the segment" c_cat_never_writes
t "rm by name, bare name, semaphore name and key" c_rm
t "rm by System V id" c_rm_by_id
t "rm errors" c_rm_errors
t "-l describes ls, cat, rm" c_list
finish
