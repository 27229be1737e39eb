#!/usr/bin/env bash
# A System V segment made by a script is what `ipcs -m` shows while the script holds it (key,
# id, size, perms, one attach), and is gone after the script ends: normally, by SIGTERM, or by
# an uncaught error. With keep it stays, unattached.
. "$(dirname "$0")/lib.sh"

KEY=$(printf '0x%08x' $(( 0x53200000 | ($$ & 0xfffff) )))

# hold KEY FLAG [keep|error]: creates the segment, prints its id, waits for FLAG to exist.
HOLD='
local shm = require "shmhost"
local seg = assert(shm.sysv(tonumber(arg[1]), {create = true, excl = true, size = 4000,
                                                mode = "0640", keep = arg[3] == "keep"}))
print(seg.id)
for _ = 1, 2000 do
  if io.open(arg[2]) then break end
  shm.sleep(0.01)
end
if arg[3] == "error" then error("on purpose") end
'

ipcs_line() { ipcs -m | awk -v id="$1" '$2 == id'; }

# start_hold MODE: starts the holder in the background; sets PID and ID.
start_hold() {
  # Old output must go first: the loop below could read it before the new holder truncates it.
  rm -f "$WORK/flag" "$WORK/out" "$WORK/err"
  # timeout leads a process group of its own, so the holder can be killed with it.
  timeout -k 2 30 "$SHMHOST" -e "$HOLD" "$KEY" "$WORK/flag" "$1" >"$WORK/out" 2>"$WORK/err" &
  PID=$!
  for _ in $(seq 400); do [ -s "$WORK/out" ] && break; sleep 0.05; done
  ID=$(head -n1 "$WORK/out")
  if [ -z "$ID" ]; then
    local ps_out
    ps_out=$(ps -o pid,stat,etime,wchan:20,args -g "$PID" 2>&1)
    kill -TERM -- "-$PID" 2>/dev/null
    wait "$PID"
    fail "the holder printed no id in 20 s: $(cat "$WORK/err"); processes: $ps_out"
  fi
}

gone() { [ -z "$(ipcs_line "$1")" ] || fail "segment $1 still listed: $(ipcs_line "$1")"; }

c_held_then_removed() {
  start_hold normal || return 1
  local line
  line=$(ipcs_line "$ID")
  expect_match "$line" "^$KEY +$ID +[a-z0-9]+ +640 +4000 +1( |$)" "ipcs line" || { touch "$WORK/flag"; return 1; }
  touch "$WORK/flag"
  wait "$PID"
  expect_eq "$?" 0 status && gone "$ID"
}

c_removed_on_sigterm() {
  start_hold normal || return 1
  [ -n "$(ipcs_line "$ID")" ] || fail "not listed while held"
  kill -TERM "$PID"
  wait "$PID"
  expect_eq "$?" 143 status && gone "$ID"
}

c_removed_on_error() {
  start_hold error || return 1
  touch "$WORK/flag"
  wait "$PID"
  expect_eq "$?" 1 status && expect_match "$(cat "$WORK/err")" "on purpose" && gone "$ID"
}

c_kept() {
  start_hold keep || return 1
  touch "$WORK/flag"
  wait "$PID"
  local line
  line=$(ipcs_line "$ID")
  ipcrm -m "$ID" 2>/dev/null
  expect_match "$line" "^$KEY +$ID +[a-z0-9]+ +640 +4000 +0( |$)" "kept, unattached"
}

t "ipcs shows a held segment, and not after exit" c_held_then_removed
t "SIGTERM removes it" c_removed_on_sigterm
t "an uncaught error removes it" c_removed_on_error
t "keep leaves it, with no attach" c_kept
finish
