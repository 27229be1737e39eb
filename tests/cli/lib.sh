# Helpers for the end-to-end tests: each test file sources this, runs cases with `t NAME CMD...`
# (a case passes when CMD exits 0) and ends with `finish`, which prints "N passed, N failed".
# Every process a test starts runs under `timeout`, so a hang fails the case instead of the suite.
set -u
: "${SHMHOST:?SHMHOST must name the shmhost binary}"
: "${SHMHOST_SRC:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
export SHMHOST SHMHOST_SRC
TAG="shmht$$"
WORK=$(mktemp -d "/tmp/${TAG}_work.XXXXXX")
_passed=0
_failed=0
trap 'rm -rf "$WORK"' EXIT

# t NAME COMMAND...: runs COMMAND (usually a shell function), reports the case.
t() {
  local name=$1; shift
  local out
  if out=$("$@" 2>&1); then
    _passed=$((_passed + 1)); echo "ok   $name"
  else
    _failed=$((_failed + 1)); echo "FAIL $name"; printf '%s\n' "$out" | sed 's/^/  /'
  fi
}

# fail MESSAGE: ends the current case with a message.
fail() { echo "$*" >&2; return 1; }

# expect_eq GOT WANT [WHAT]
expect_eq() {
  [ "$1" == "$2" ] || fail "${3:-value}: expected [$2], got [$1]"
}

# expect_match TEXT REGEX [WHAT]
expect_match() {
  printf '%s' "$1" | grep -qE -- "$2" || fail "${3:-output} does not match /$2/: [$1]"
}

# run_sh [timeout] ARGS...: runs shmhost with a deadline; sets OUT, ERR, RC.
run_sh() {
  local secs=20
  if [[ "${1:-}" =~ ^[0-9]+$ ]]; then secs=$1; shift; fi
  OUT=$(timeout -k 2 "$secs" "$SHMHOST" "$@" 2>"$WORK/stderr" </dev/null); RC=$?
  ERR=$(cat "$WORK/stderr")
}

finish() {
  echo "$_passed passed, $_failed failed"
  [ "$_failed" -eq 0 ]
}
