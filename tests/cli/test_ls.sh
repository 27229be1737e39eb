#!/usr/bin/env bash
# `shmhost ls` and `shmhost rm --stale` against real objects: a holder process maps a POSIX
# segment and attaches a System V one; ls shows both with the holder's pid, --json parses and
# says the same, and rm --stale removes the objects nobody uses while it keeps the held ones.
. "$(dirname "$0")/lib.sh"

KEYHELD=$(printf '0x%08x' $(( 0x53400000 | ($$ & 0xfffff) )))
KEYSTALE=$(printf '0x%08x' $(( 0x53500000 | ($$ & 0xfffff) )))
ME=$(id -un)
HELD="/${TAG}_held"
LOOSE="/${TAG}_loose"
HOLDER_PID=
TIMEOUT_PID=

# The holder: creates /TAG_held (5000 bytes, mode 0640) and a System V segment, prints ready,
# and waits for the flag file; cleanup at exit removes both.
HOLD='
local shm = require "shmhost"
local p = assert(shm.open(arg[1], {create = true, excl = true, size = 5000, mode = "0640"}))
local v = assert(shm.sysv(tonumber(arg[2]), {create = true, excl = true, size = 3000}))
print(v.id, shm.pid())
io.stdout:flush()
for _ = 1, 3000 do
  if io.open(arg[3]) then break end
  shm.sleep(0.01)
end
'

start_holder() {
  rm -f "$WORK/holder.out" "$WORK/holder.err"
  timeout -k 2 60 "$SHMHOST" -e "$HOLD" "$HELD" "$KEYHELD" "$WORK/flag" >"$WORK/holder.out" 2>"$WORK/holder.err" &
  TIMEOUT_PID=$!
  for _ in $(seq 400); do [ -s "$WORK/holder.out" ] && break; sleep 0.05; done
  # The holder says its own pid: $! is the pid of `timeout`, its parent, which leads a process
  # group of its own.
  read -r HELD_ID HOLDER_PID < "$WORK/holder.out"
  if [ -z "$HELD_ID" ]; then
    echo "holder did not start: $(cat "$WORK/holder.err")" >&2
    kill -TERM -- "-$TIMEOUT_PID" 2>/dev/null
    exit 1
  fi
}

stop_holder() {
  if [ -n "${TIMEOUT_PID:-}" ]; then
    touch "$WORK/flag"
    wait "$TIMEOUT_PID" 2>/dev/null
    TIMEOUT_PID=
  fi
}

# Objects that nobody maps: a kept POSIX segment and a kept System V segment whose creator
# has exited.
make_loose() {
  run_sh -e '
    local shm = require "shmhost"
    assert(shm.open(arg[1], {create = true, size = 100, keep = true}))
    print(assert(shm.sysv(tonumber(arg[2]), {create = true, size = 200, keep = true})).id)
  ' "$LOOSE" "$KEYSTALE"
  [ "$RC" -eq 0 ] || { echo "make_loose: $ERR" >&2; return 1; }
  STALE_ID=$OUT
}

remove_leftovers() {
  stop_holder
  rm -f "/dev/shm$LOOSE" "/dev/shm$HELD"
  for k in "$KEYHELD" "$KEYSTALE"; do ipcrm -M "$k" 2>/dev/null; done
  rm -rf "$WORK"
}
trap remove_leftovers EXIT

start_holder
make_loose || exit 1

c_table() {
  run_sh ls
  expect_eq "$RC" 0 status || return 1
  expect_match "$OUT" '^KIND +NAME/KEY +ID +SIZE +MODE +OWNER +NATTCH +CPID +MAPPED BY +STATUS' header &&
  expect_match "$OUT" "^posix +$HELD +- +5000 +0640 +$ME +1 +- +$HOLDER_PID\$" "held POSIX line" &&
  expect_match "$OUT" "^posix +$LOOSE +- +100 +0600 +$ME +0 +- +- +stale\$" "loose POSIX line" &&
  expect_match "$OUT" "^sysv +$KEYHELD +$HELD_ID +3000 +0600 +$ME +1 +$HOLDER_PID +$HOLDER_PID\$" "held sysv line" &&
  expect_match "$OUT" "^sysv +$KEYSTALE +$STALE_ID +200 +0600 +$ME +0 +[0-9]+\(dead\) +- +stale\$" "stale sysv line"
}

c_match() {
  run_sh ls --match "$TAG"
  expect_eq "$(printf '%s\n' "$OUT" | wc -l)" 3 "header and two POSIX lines"
}

c_json() {
  run_sh ls --json
  expect_eq "$RC" 0 status || return 1
  printf '%s' "$OUT" | python3 -c '
import json, sys
held, loose, kheld, kstale, holder, held_id, stale_id, me = sys.argv[1:]
objs = json.load(sys.stdin)
by = {}
for o in objs:
    by[o.get("name") or "key:%08x" % o["key"]] = o
h = by[held]
assert h["kind"] == "posix" and h["size"] == 5000 and h["mode"] == "0640", h
assert h["mapped_by"] == [int(holder)] and h["stale"] is False, h
assert h["owner"] == me and h["nattch"] == 1, h
l = by[loose]
assert l["mapped_by"] == [] and l["open_by"] == [] and l["stale"] is True, l
s = by["key:%08x" % int(kheld, 16)]
assert s["kind"] == "sysv" and s["id"] == int(held_id) and s["size"] == 3000, s
assert s["nattch"] == 1 and s["cpid"] == int(holder) and s["cpid_alive"] is True, s
assert s["mapped_by"] == [int(holder)] and s["stale"] is False, s
t = by["key:%08x" % int(kstale, 16)]
assert t["id"] == int(stale_id) and t["nattch"] == 0 and t["cpid_alive"] is False, t
assert t["stale"] is True and "name" not in t, t
' "$HELD" "$LOOSE" "$KEYHELD" "$KEYSTALE" "$HOLDER_PID" "$HELD_ID" "$STALE_ID" "$ME"
}

c_dry_run() {
  run_sh rm --stale --match "$TAG" --dry-run
  expect_eq "$RC" 0 status && expect_eq "$OUT" "would remove posix $LOOSE" &&
    [ -e "/dev/shm$LOOSE" ] || fail "dry run removed it"
}

c_stale_posix() {
  run_sh rm --stale --match "$TAG"
  expect_eq "$RC" 0 status && expect_eq "$OUT" "removed posix $LOOSE" || return 1
  [ ! -e "/dev/shm$LOOSE" ] || fail "stale segment still there"
  [ -e "/dev/shm$HELD" ] || fail "held segment was removed"
}

c_stale_sysv() {
  # Only this test's keys: another test's stale segment is not ours to remove.
  run_sh rm --stale --match "$KEYHELD"
  expect_eq "$RC" 0 status && expect_eq "$OUT" "" "nothing to remove for the held key" || return 1
  run_sh rm --stale --match "$KEYSTALE"
  expect_eq "$RC" 0 status && expect_eq "$OUT" "removed sysv $KEYSTALE (id $STALE_ID)" || return 1
  ipcs -m | awk '{print $2}' | grep -qx "$HELD_ID" || fail "held System V segment was removed"
  ! ipcs -m | awk '{print $2}' | grep -qx "$STALE_ID" || fail "stale System V segment still there"
}

c_after_holder() {
  stop_holder
  run_sh ls --match "$TAG"
  expect_eq "$OUT" "$(printf 'KIND  NAME/KEY  ID  SIZE  MODE  OWNER  NATTCH  CPID  MAPPED BY  STATUS')" \
    "nothing of ours left once the holder ended"
}

c_usage() {
  run_sh ls --frob
  expect_eq "$RC" 2 status && expect_match "$ERR" "unknown argument '--frob'" && expect_match "$ERR" '^usage'
}

t "ls shows both kinds with the holder's pid and the stale ones" c_table
t "ls --match filters by name" c_match
t "ls --json parses and says the same" c_json
t "rm --stale --dry-run removes nothing" c_dry_run
t "rm --stale removes an unmapped POSIX segment and keeps a mapped one" c_stale_posix
t "rm --stale removes a dead creator's unattached System V segment only" c_stale_sysv
t "objects go away with their creator" c_after_holder
t "ls usage errors" c_usage
finish
