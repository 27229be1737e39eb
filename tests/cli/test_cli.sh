#!/usr/bin/env bash
# The command line as a user meets it: -e, errors, exit statuses, lookup of bundled scripts.
. "$(dirname "$0")/lib.sh"

c_eval() { run_sh -e 'print(1+1)'; expect_eq "$OUT" 2 && expect_eq "$RC" 0 status; }
c_error() {
  run_sh -e 'error("boom")'
  expect_eq "$RC" 1 status && expect_match "$ERR" '^shmhost: \(command line\):1: boom' &&
    expect_match "$ERR" 'stack traceback:'
}
c_error_object() {
  run_sh -e 'error(setmetatable({}, {__tostring = function() return "custom object" end}))'
  expect_eq "$RC" 1 status && expect_match "$ERR" 'custom object'
}
c_syntax() {
  printf 'local x = \n' > "$WORK/bad.lua"
  run_sh "$WORK/bad.lua"
  expect_eq "$RC" 1 status && expect_match "$ERR" "bad.lua:2:"
}
c_nosuch() {
  run_sh nosuch
  expect_eq "$RC" 2 status && expect_match "$ERR" "nosuch" && expect_match "$ERR" "bundled"
}
c_noargs() { run_sh; expect_eq "$RC" 2 status && expect_match "$ERR" '^usage: shmhost'; }
c_badopt() { run_sh --frobnicate; expect_eq "$RC" 2 status && expect_match "$ERR" "unknown option '--frobnicate'"; }
c_e_noarg() { run_sh -e; expect_eq "$RC" 2 status && expect_match "$ERR" "-e needs an argument"; }
c_version() { run_sh -v; expect_eq "$RC" 0 && expect_match "$OUT" '^shmhost [0-9]+\.[0-9]+'; }
c_help() { run_sh --help; expect_eq "$RC" 0 && expect_match "$OUT" 'shmhost -e CODE'; }
c_order() {
  run_sh -e 'shmhost.spawn(function() shmhost.sleep(0.05) print("b") end) print("a")'
  expect_eq "$OUT" $'a\nb'
}
c_args() {
  printf 'print(arg[0], ...)\n' > "$WORK/args.lua"
  run_sh "$WORK/args.lua" x "y z"
  expect_eq "$OUT" "$WORK/args.lua"$'\tx\ty z'
}
c_path_lookup() {
  mkdir -p "$WORK/p1" "$WORK/p2"
  printf -- '-- says hello from p1\nprint("p1", ...)\n' > "$WORK/p1/hello.lua"
  printf -- '-- shadowed\nprint("p2")\n' > "$WORK/p2/hello.lua"
  printf -- '-- only in p2\nprint("p2 only")\n' > "$WORK/p2/other.lua"
  OUT=$(cd "$WORK" && SHMHOST_PATH="$WORK/p1:$WORK/p2" timeout 10 "$SHMHOST" hello 1) &&
    expect_eq "$OUT" $'p1\t1' &&
    OUT=$(cd "$WORK" && SHMHOST_PATH="$WORK/p1:$WORK/p2" timeout 10 "$SHMHOST" other.lua) &&
    expect_eq "$OUT" "p2 only" &&
    OUT=$(SHMHOST_PATH="$WORK/p1:$WORK/p2" timeout 10 "$SHMHOST" -l) &&
    expect_match "$OUT" '^hello +says hello from p1$' && expect_match "$OUT" '^other +only in p2$'
}
c_list_bundled() {
  run_sh -l
  expect_eq "$RC" 0 status || return 1
  # Every bundled script is listed with its description.
  local f n
  for f in "$SHMHOST_SRC"/scripts/*.lua; do
    [ -e "$f" ] || continue
    n=$(basename "$f" .lua)
    expect_match "$OUT" "^$n  " "listing of $n" || return 1
  done
}
c_stdin_script() { OUT=$(echo 'print("from stdin")' | timeout 10 "$SHMHOST" -); expect_eq "$OUT" "from stdin"; }
# The script prints a line, then waits for the test to have read it. With stdout held in a
# buffer the line would not arrive until the script gave up waiting and said so.
c_line_buffered() {
  local flag="$WORK/line_flag" rest
  rm -f "$flag"
  rest=$(timeout 20 "$SHMHOST" -e '
    print("early")
    for _ = 1, 1000 do
      if io.open(arg[1]) then print("late") return end
      shmhost.sleep(0.01)
    end
    print("gave up waiting: the first line was not delivered")' "$flag" |
    { IFS= read -r first; touch "$flag"; echo "$first"; cat; })
  expect_eq "$rest" $'early\nlate'
}
c_sigterm() {
  timeout 10 "$SHMHOST" -e 'shmhost.sleep(20)' & local p=$!
  sleep 0.3; kill -TERM $p; wait $p; expect_eq $? 143 status
}
c_os_exit_cleanup() {
  run_sh -e 'os.exit(4)'; expect_eq "$RC" 4 status
}

# A created segment must be gone after every way the program can end.
HOLD='local seg = assert(shmhost.open(arg[1], {create = true, size = 4096}))
print("ready") io.stdout:flush()
if arg[2] == "error" then shmhost.sleep(0.1) error("on purpose") end
if arg[2] == "exit" then shmhost.exit(3) end
if arg[2] == "osexit" then os.exit(4) end
if arg[2] == "keep" then seg:keep() return end
shmhost.sleep(20)'
# end_with HOW SIGNAL WANT: runs the holder, ends it, checks status and that the name is gone.
end_with() {
  local name="/${TAG}_$1" rc
  rm -f "$WORK/hold.out" "$WORK/hold.err" # stale output would look like "ready"
  timeout -k 2 20 "$SHMHOST" -e "$HOLD" "$name" "$1" > "$WORK/hold.out" 2> "$WORK/hold.err" & local p=$!
  for _ in $(seq 200); do grep -q ready "$WORK/hold.out" 2>/dev/null && break; sleep 0.05; done
  [ -e "/dev/shm$name" ] || [ "$1" != sig ] || { kill $p; fail "segment was never created"; return 1; }
  [ -n "$2" ] && kill "-$2" $p
  wait $p; rc=$?
  expect_eq "$rc" "$3" "status after $1 $2" || return 1
  if [ "$1" = keep ]; then
    [ -e "/dev/shm$name" ] || fail "a kept segment was removed"
    rm -f "/dev/shm$name"
  else
    [ ! -e "/dev/shm$name" ] || { rm -f "/dev/shm$name"; fail "/dev/shm$name left behind after $1 $2"; }
  fi
}
c_cleanup_sigterm() { end_with sig TERM 143; }
c_cleanup_sigint() { end_with sig INT 130; }
c_cleanup_sighup() { end_with sig HUP 129; }
c_cleanup_error() { end_with error "" 1; }
c_cleanup_exit() { end_with exit "" 3; }
c_cleanup_osexit() { end_with osexit "" 4; }
c_cleanup_keep() { end_with keep "" 0; }

t "-e prints" c_eval
t "error: status 1, message and traceback" c_error
t "error object with __tostring" c_error_object
t "syntax error names file and line" c_syntax
t "unknown script: status 2, names it, lists bundled" c_nosuch
t "no arguments: usage, status 2" c_noargs
t "unknown option: status 2" c_badopt
t "-e without code: status 2" c_e_noarg
t "-v" c_version
t "-h" c_help
t "spawned task runs after the main chunk yields" c_order
t "script path and arguments" c_args
t "SHMHOST_PATH lookup, .lua optional, -l lists" c_path_lookup
t "-l lists every bundled script" c_list_bundled
t "script from stdin" c_stdin_script
t "stdout line-buffered on a pipe" c_line_buffered
t "SIGTERM gives 143" c_sigterm
t "os.exit keeps its status" c_os_exit_cleanup
t "cleanup on SIGTERM (143)" c_cleanup_sigterm
t "cleanup on SIGINT (130)" c_cleanup_sigint
t "cleanup on SIGHUP (129)" c_cleanup_sighup
t "cleanup after an uncaught error" c_cleanup_error
t "cleanup after shmhost.exit" c_cleanup_exit
t "cleanup after os.exit" c_cleanup_osexit
t "a kept segment stays" c_cleanup_keep
finish
