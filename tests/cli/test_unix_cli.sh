#!/usr/bin/env bash
# A socket path made by `shm.unix.listen` exists (a listening socket, as `ss -xl` shows) while
# the script runs and is gone after it ends: normally, by SIGTERM, by an uncaught error. A
# listener killed by SIGKILL leaves a stale path that the next listener replaces with a
# warning; `keep` leaves it on purpose; a regular file in the way is never touched.
. "$(dirname "$0")/lib.sh"

SOCK="/tmp/${TAG}_cli.sock"

# HOLD: listens on arg[1], prints "ready", waits until the file arg[2] exists, then ends the
# way arg[3] says.
HOLD='
local shm = require "shmhost"
local srv = assert(shm.unix.listen{path = arg[1], keep = arg[3] == "keep"})
print("ready " .. shm.pid())
for _ = 1, 2000 do
  if io.open(arg[2]) then break end
  shm.sleep(0.01)
end
if arg[3] == "error" then error("on purpose") end
'

# start_hold MODE: starts the holder in the background; sets PID (of `timeout`, which passes
# SIGTERM on) and HPID (of shmhost itself, for SIGKILL, which `timeout` cannot pass on).
start_hold() {
  # Old output must go first: the loop below could read it before the new holder truncates it.
  rm -f "$WORK/flag" "$WORK/out" "$WORK/err"
  timeout -k 2 30 "$SHMHOST" -e "$HOLD" "$SOCK" "$WORK/flag" "$1" >"$WORK/out" 2>"$WORK/err" &
  PID=$!
  for _ in $(seq 200); do [ -s "$WORK/out" ] && break; sleep 0.05; done
  local line; line=$(head -n1 "$WORK/out")
  [ "${line%% *}" == "ready" ] || fail "the holder is not ready: $(cat "$WORK/err")"
  HPID=${line#ready }
}

is_listening() { ss -xl | grep -qF -- " $SOCK "; }
gone() { [ ! -e "$SOCK" ] || fail "$SOCK still exists"; }

c_listening_then_removed() {
  start_hold normal || return 1
  [ -S "$SOCK" ] || fail "no socket at $SOCK"
  expect_eq "$(stat -c %a "$SOCK")" 600 "mode" || return 1
  if command -v ss >/dev/null; then is_listening || fail "ss -xl does not show $SOCK" || return 1; fi
  touch "$WORK/flag"
  wait "$PID"; expect_eq $? 0 "status" || return 1
  gone
}

c_sigterm_removes() {
  start_hold normal || return 1
  kill -TERM "$PID"
  wait "$PID"; expect_eq $? 143 "status after SIGTERM" || return 1
  gone
}

c_error_removes() {
  start_hold error || return 1
  touch "$WORK/flag"
  wait "$PID"; expect_eq $? 1 "status after an error" || return 1
  expect_match "$(cat "$WORK/err")" "on purpose" "stderr" || return 1
  gone
}

c_sigkill_leaves_stale_then_replaced() {
  start_hold normal || return 1
  kill -KILL "$HPID"
  wait "$PID" 2>/dev/null
  [ -S "$SOCK" ] || fail "SIGKILL cannot clean up, so the path should remain" || return 1
  run_sh -e 'local s = assert(shmhost.unix.listen{path = arg[1]}) print("took over")' "$SOCK"
  expect_eq "$RC" 0 "status" || return 1
  expect_eq "$OUT" "took over" "stdout" || return 1
  expect_match "$ERR" "^warning: listen $SOCK: replaced a stale socket" "stderr" || return 1
  gone
}

c_live_listener_refused() {
  start_hold normal || return 1
  run_sh -e 'print(shmhost.unix.listen{path = arg[1]})' "$SOCK"
  touch "$WORK/flag"
  wait "$PID"
  expect_eq "$RC" 0 "status" || return 1
  expect_match "$OUT" "^nil	listen $SOCK: Address already in use	98$" "stdout" || return 1
  gone
}

c_keep_stays() {
  start_hold keep || return 1
  touch "$WORK/flag"
  wait "$PID"; expect_eq $? 0 "status" || return 1
  [ -S "$SOCK" ] || fail "keep = true should leave the path" || return 1
  rm -f "$SOCK"
}

c_regular_file_untouched() {
  printf 'precious' > "$SOCK"
  run_sh -e 'print(shmhost.unix.listen{path = arg[1]})' "$SOCK"
  local content; content=$(cat "$SOCK")
  rm -f "$SOCK"
  expect_eq "$RC" 0 "status" || return 1
  expect_match "$OUT" "^nil	listen $SOCK: File exists \(not a socket; left untouched\)	17$" "stdout" || return 1
  expect_eq "$content" "precious" "file content"
}

c_two_processes_talk() {
  # A listener and a client as two shmhost processes; the client starts first and waits.
  timeout -k 2 20 "$SHMHOST" -e '
    local c = assert(shmhost.unix.connect{path = arg[1], wait = 10})
    c:send("from client")
    print((c:recv()))' "$SOCK" >"$WORK/client" 2>&1 &
  local cpid=$!
  sleep 0.2
  run_sh -e '
    local srv = assert(shmhost.unix.listen{path = arg[1]})
    local c = assert(srv:accept())
    local got = c:recv()
    c:send("echo: " .. got)
    print(got, c:peer().uid)' "$SOCK"
  wait "$cpid"; local crc=$?
  expect_eq "$RC" 0 "listener status: $ERR" || return 1
  expect_eq "$crc" 0 "client status: $(cat "$WORK/client")" || return 1
  expect_eq "$OUT" "from client	$(id -u)" "listener output" || return 1
  expect_eq "$(cat "$WORK/client")" "echo: from client" "client output" || return 1
  gone
}

t "a listener's path exists while it runs and is removed at the end" c_listening_then_removed
t "SIGTERM removes the socket path (status 143)" c_sigterm_removes
t "an uncaught error removes the socket path (status 1)" c_error_removes
t "SIGKILL leaves a stale path; the next listener replaces it with a warning" c_sigkill_leaves_stale_then_replaced
t "a second listener on a live path gets Address already in use" c_live_listener_refused
t "keep = true leaves the path" c_keep_stays
t "a regular file in the way is never touched" c_regular_file_untouched
t "two shmhost processes talk; the client started first" c_two_processes_talk
rm -f "$SOCK"
finish
