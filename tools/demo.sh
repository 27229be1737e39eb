#!/usr/bin/env bash
# `make demo`: the Day56 lab on this machine. A writer and two readers of the bundled
# scenarios go through a short scripted session (two writes, a show, a shutdown); every line
# each process prints is shown with its name in front, and at the end the demo checks that the
# segment and the control socket are gone. Every process has a deadline, so the demo cannot
# hang; a stale /day56_shm or socket from an earlier crash is replaced by the writer (it says
# so with a warning).
#
#   bash tools/demo.sh PATH_TO_SHMHOST
#
# DAY56_NAME and DAY56_SOCKET replace the lab's names (the test of this demo uses its own).
set -u
SHMHOST=${1:?usage: bash tools/demo.sh PATH_TO_SHMHOST}
[ -x "$SHMHOST" ] || { echo "demo: $SHMHOST is not an executable" >&2; exit 2; }
# The scenarios of this tree come first, before any installed copy.
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export SHMHOST_PATH="$SRC/scripts:$SRC/examples${SHMHOST_PATH:+:$SHMHOST_PATH}"
NAME=${DAY56_NAME:-/day56_shm}
SOCK=${DAY56_SOCKET:-/tmp/day56_shm_ctrl.sock}
PAUSE=0.4

tmp=$(mktemp -d /tmp/shmhost_demo.XXXXXX)
groups=()
finish() {
  exec 9>&- 2>/dev/null
  local g
  for g in "${groups[@]}"; do kill -KILL -- "-$g" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$tmp"
}
trap finish EXIT

say() { printf 'demo | %s\n' "$*"; }

# start ID ARGS...: runs `shmhost ARGS...` in a process group of its own with a deadline; its
# stdout and stderr are shown prefixed with ID as they come, kept in $tmp/ID.log, and its exit
# status is written to $tmp/ID.rc. stdin is $tmp/ID.in when that exists.
start() {
  local id=$1 input=/dev/null
  shift
  [ -p "$tmp/$id.in" ] && input="$tmp/$id.in"
  setsid bash -c '
    id=$1 tmp=$2
    shift 2
    { timeout -k 2 30 "$@" 2>&1; echo $? >"$tmp/$id.rc"; } 9>&- |
      tee "$tmp/$id.log" | sed -u "s/^/$id | /"
  ' _ "$id" "$tmp" "$SHMHOST" "$@" <"$input" 9>&- &
  groups+=($!)
}

# until_true SECS COMMAND...: polls COMMAND until it succeeds or SECS pass.
until_true() {
  local steps=$(($1 * 20))
  shift
  until "$@"; do
    steps=$((steps - 1))
    [ "$steps" -gt 0 ] || return 1
    sleep 0.05
  done
}
ready() { grep -q 'epoll wait start' "$tmp/$1.log" 2>/dev/null; }
ended() { [ -s "$tmp/$1.rc" ]; }
gone() { [ ! -e "/dev/shm$NAME" ] && [ ! -e "$SOCK" ]; }

say "the Day56 lab: segment $NAME, control socket $SOCK"
[ -e "/dev/shm$NAME" ] && say "a segment $NAME exists already (stale from an earlier run?)"
mkfifo "$tmp/writer.in"
start writer writer --name "$NAME" --socket "$SOCK"
# Opening our end of the FIFO completes the writer's open of its stdin.
exec 9>"$tmp/writer.in"
start reader1 reader --name "$NAME" --socket "$SOCK"
start reader2 reader --name "$NAME" --socket "$SOCK"
# Ready: both readers wait for updates (or the writer has already given up).
both_ready() { ended writer || { ready reader1 && ready reader2; }; }
if ! until_true 10 both_ready || ended writer; then
  say "FAIL: the readers did not connect to the writer (see above)"
  exit 1
fi
for cmd in "-w hello shared memory" "-w second" "-s" "-t"; do
  sleep "$PAUSE"
  say "writer's stdin: $cmd"
  printf '%s\n' "$cmd" >&9
done
exec 9>&-
status=0
for id in writer reader1 reader2; do
  if ! until_true 5 ended "$id"; then
    say "FAIL: $id did not end"
    status=1
  elif [ "$(cat "$tmp/$id.rc")" != 0 ]; then
    say "FAIL: $id exited with status $(cat "$tmp/$id.rc")"
    status=1
  fi
done
# The pipelines that show the output end with their processes.
wait
if gone; then
  say "nothing left: no $NAME in /dev/shm, no socket at $SOCK"
else
  ls -l "/dev/shm$NAME" "$SOCK" 2>/dev/null | sed "s/^/demo | left: /"
  say "FAIL: the writer left objects behind"
  status=1
fi
if [ "$status" -eq 0 ]; then say "PASS"; else say "FAIL"; fi
exit "$status"
