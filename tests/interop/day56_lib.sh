# Helpers for the Day56 interop and command-line tests: start a writer or a reader of either
# kind (c: the lab-style C peers built into the build directory; lua: the bundled scenarios run
# by shmhost), each in its own process group under `timeout`, feed a writer's stdin through a
# FIFO, wait for lines and exits with deadlines, and remove everything at the end of a case.
#
#   d56_case NAME FUNCTION [ARGS...]   runs FUNCTION as one case (through lib.sh's `t`) with
#                            fresh object names, then kills what it started, removes leftovers
#   d56_start ID KIND ROLE [ARGS...]   ROLE writer|reader; writers get a FIFO as stdin
#   d56_start_cmd ID PROGRAM [ARGS...]   any other process (a fake peer)
#   d56_send ID LINE         one command line to writer ID
#   d56_eof ID               closes writer ID's stdin
#   d56_wait_line ID REGEX [SECS]   waits until ID's stdout has a line matching REGEX
#   d56_wait_exit ID SECS    waits for ID to end; sets RC
#   d56_kill ID              SIGKILL to ID's whole process group
. "$(dirname "${BASH_SOURCE[0]}")/../cli/lib.sh"
# The scenarios under test are this tree's: an installed copy (make install) would otherwise
# come first in shmhost's search path and be tested instead.
export SHMHOST_PATH="$SHMHOST_SRC/scripts:$SHMHOST_SRC/examples"

: "${SHMHOST_BUILD:=$(dirname "$SHMHOST")}"
C_WRITER="$SHMHOST_BUILD/c_writer"
C_READER="$SHMHOST_BUILD/c_reader"
if [ ! -x "$C_WRITER" ] || [ ! -x "$C_READER" ]; then
  echo "the C peers are not built: $C_WRITER, $C_READER" >&2
  exit 1
fi

declare -A D56_PID D56_FD
D56_SEQ=0
NAME=""
SOCK=""

# The argv of a peer of KIND playing ROLE.
d56_cmd() {
  case "$1" in
    c) D56_ARGV=("$SHMHOST_BUILD/c_$2") ;;
    lua) D56_ARGV=("$SHMHOST" "$2") ;;
    *) fail "unknown peer kind $1"; return 1 ;;
  esac
}

# Runs in the background child: closes our ends of the writers' FIFOs (a child holding one
# would keep that writer from ever seeing the end of its input), then becomes the peer.
# setsid: the peer leads a process group of its own, so a failure kills exactly it.
d56_exec() {
  local fd
  for fd in "${D56_FD[@]}"; do [ -n "$fd" ] && eval "exec $fd>&-"; done
  exec setsid timeout -k 2 30 "${D56_ARGV[@]}" --name "$NAME" --socket "$SOCK" "$@"
}

d56_start() {
  local id=$1 kind=$2 role=$3
  shift 3
  d56_cmd "$kind" "$role" || return 1
  : >"$WORK/$id.out"
  : >"$WORK/$id.err"
  if [ "$role" = writer ]; then
    rm -f "$WORK/$id.in"
    mkfifo "$WORK/$id.in"
    # The FIFO's open in the child blocks until we open our end below.
    d56_exec "$@" <"$WORK/$id.in" >"$WORK/$id.out" 2>"$WORK/$id.err" &
    D56_PID[$id]=$!
    local fd
    exec {fd}>"$WORK/$id.in"
    D56_FD[$id]=$fd
  else
    d56_exec "$@" </dev/null >"$WORK/$id.out" 2>"$WORK/$id.err" &
    D56_PID[$id]=$!
  fi
}

# d56_start_cmd ID PROGRAM [ARGS...]: any other process (a fake peer), in its own group too.
d56_start_cmd() {
  local id=$1
  shift
  D56_ARGV=("$@")
  : >"$WORK/$id.out"
  : >"$WORK/$id.err"
  (
    for fd in "${D56_FD[@]}"; do [ -n "$fd" ] && eval "exec $fd>&-"; done
    exec setsid timeout -k 2 30 "${D56_ARGV[@]}"
  ) </dev/null >"$WORK/$id.out" 2>"$WORK/$id.err" &
  D56_PID[$id]=$!
}

d56_send() { printf '%s\n' "$2" >&"${D56_FD[$1]}"; }

d56_eof() {
  local fd=${D56_FD[$1]:-}
  if [ -n "$fd" ]; then
    exec {fd}>&-
    D56_FD[$1]=""
  fi
}

# Shows what a peer printed, for a failing case.
d56_show() {
  local id
  for id in "$@"; do
    sed "s/^/  $id | /" "$WORK/$id.out" >&2
    sed "s/^/  $id ! /" "$WORK/$id.err" >&2
  done
}

d56_wait_line() {
  local id=$1 re=$2 secs=${3:-10}
  local end=$((SECONDS + secs))
  until grep -qE -- "$re" "$WORK/$id.out"; do
    if [ "$SECONDS" -gt "$end" ]; then
      fail "$id: no line matching /$re/ within $secs s"
      d56_show "$id"
      return 1
    fi
    sleep 0.02
  done
}

# True while PID runs (a zombie has ended: it only waits for `wait` to reap it).
d56_running() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat:0:1}" != Z ]
}

# Waits up to SECS (fractions allowed) for ID to end; RC is its exit status (124: timeout
# ended it; 137: killed).
d56_wait_exit() {
  local id=$1 secs=$2 pid=${D56_PID[$1]}
  local steps
  steps=$(awk -v s="$secs" 'BEGIN { printf "%d", s * 50 }')
  while d56_running "$pid" && [ "$steps" -gt 0 ]; do
    sleep 0.02
    steps=$((steps - 1))
  done
  if d56_running "$pid"; then
    fail "$id (pid $pid) still runs after $secs s"
    d56_show "$id"
    return 1
  fi
  wait "$pid"
  RC=$?
  D56_PID[$id]=""
}

d56_kill() {
  local pid=${D56_PID[$1]:-}
  [ -n "$pid" ] && kill -KILL -- "-$pid" 2>/dev/null
  return 0
}

# Expects ID to have ended with status WANT.
d56_expect_rc() {
  d56_wait_exit "$1" "$3" || return 1
  [ "$RC" -eq "$2" ] || { fail "$1 exited $RC, expected $2"; d56_show "$1"; return 1; }
}

d56_gone() {
  [ ! -e "/dev/shm$NAME" ] || { fail "segment $NAME is left in /dev/shm"; return 1; }
  [ ! -e "$SOCK" ] || { fail "socket $SOCK is left"; return 1; }
}

d56_cleanup() {
  local id
  for id in "${!D56_FD[@]}"; do d56_eof "$id"; done
  for id in "${!D56_PID[@]}"; do
    if [ -n "${D56_PID[$id]}" ]; then
      d56_kill "$id"
      wait "${D56_PID[$id]}" 2>/dev/null
    fi
  done
  D56_PID=()
  D56_FD=()
  rm -f "/dev/shm$NAME" "$SOCK"
}

# Runs FUNCTION with the names of case D56_SEQ, and always cleans up after it.
d56_run() {
  NAME="/day56_$$_$D56_SEQ"
  SOCK="/tmp/day56_$$_$D56_SEQ.sock"
  local rc=0
  "$@" || rc=1
  d56_cleanup
  return $rc
}

# d56_case NAME FUNCTION [ARGS...]: one case. `t` runs it in a subshell, so the sequence
# number that makes its names unique advances here, in the test's own shell.
d56_case() {
  local name=$1
  shift
  D56_SEQ=$((D56_SEQ + 1))
  t "$name" d56_run "$@"
}
