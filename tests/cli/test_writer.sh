#!/usr/bin/env bash
# The writer and reader scenarios from the command line: the writer's commands and their
# mistakes (too long, unknown, empty), stdin of every kind (pipe, file, /dev/null), options,
# a socket path that is not a socket, SIGTERM, and the reader's waiting for a writer.
. "$(dirname "$0")/../interop/day56_lib.sh"

# The writer's command language: stdout carries only the [INFO] lines and -s output.
commands() {
  local long255 long256
  long255=$(head -c 255 /dev/zero | tr '\0' x)
  long256="${long255}y"
  d56_start w lua writer || return 1
  d56_wait_line w 'listen success' || return 1
  d56_send w "-s"
  d56_send w "-w first"
  d56_send w "-w $long256"
  d56_send w "-s"
  d56_send w "-w $long255"
  d56_send w "-s"
  d56_send w "-w"
  d56_send w "-s"
  d56_send w "-w    " # one space separates; the message is the three after it
  d56_send w "-s"
  d56_send w "-x"
  d56_send w "hello"
  d56_send w "-wnospace"
  d56_send w ""
  d56_send w "-t"
  d56_expect_rc w 0 5 || return 1
  local want="[INFO] shm_open success
[INFO] shared memory mapped
[INFO] socket created
[INFO] socket listen success
counter=1
message=
counter=2
message=first
counter=3
message=$long255
counter=4
message=
counter=5
message=   "
  expect_eq "$(cat "$WORK/w.out")" "$want" "writer stdout" || return 1
  local err
  err=$(cat "$WORK/w.err")
  expect_match "$err" '^writer: message too long \(256 bytes, at most 255\); nothing changed' "stderr" || return 1
  expect_eq "$(grep -c '^usage: -w TEXT' <<<"$err")" 3 "usage lines (-x, hello, -wnospace)" || return 1
  expect_eq "$(wc -l <<<"$err")" 4 "stderr lines" || return 1
  d56_gone
}

# End of input is -t whatever stdin is: a file (which epoll cannot watch), /dev/null, a pipe.
stdin_kinds() {
  local kind
  for kind in file devnull pipe; do
    printf -- '-w from a %s\n-s\n-w last line without newline' "$kind" >"$WORK/cmds"
    case $kind in
      file) timeout -k 2 10 "$SHMHOST" writer --name "$NAME" --socket "$SOCK" <"$WORK/cmds" >"$WORK/out" 2>"$WORK/err" ;;
      devnull) timeout -k 2 10 "$SHMHOST" writer --name "$NAME" --socket "$SOCK" </dev/null >"$WORK/out" 2>"$WORK/err" ;;
      pipe) cat "$WORK/cmds" | timeout -k 2 10 "$SHMHOST" writer --name "$NAME" --socket "$SOCK" >"$WORK/out" 2>"$WORK/err" ;;
    esac
    local rc=$?
    expect_eq "$rc" 0 "$kind: exit status" || return 1
    expect_eq "$(cat "$WORK/err")" "" "$kind: stderr" || return 1
    if [ $kind = devnull ]; then
      expect_eq "$(wc -l <"$WORK/out")" 4 "$kind: only the [INFO] lines" || return 1
    else
      expect_eq "$(tail -n 2 "$WORK/out")" $'counter=2\nmessage=from a '"$kind" "$kind: -s" || return 1
    fi
    d56_gone || return 1
  done
}

# A line of 2 MiB is dropped with a message (not kept in memory); the next ones still work.
huge_line() {
  { printf -- '-w '; head -c $((2 * 1024 * 1024)) /dev/zero | tr '\0' x; printf '\n-w ok\n-s\n'; } |
    timeout -k 2 20 "$SHMHOST" writer --name "$NAME" --socket "$SOCK" >"$WORK/out" 2>"$WORK/err"
  expect_eq "$?" 0 "exit status" || return 1
  expect_match "$(cat "$WORK/err")" "^stdin: a line longer than 1048576 bytes was ignored$" || return 1
  expect_eq "$(tail -n 2 "$WORK/out")" $'counter=2\nmessage=ok' "-s after it" || return 1
  d56_gone
}

options() {
  run_sh writer --bogus
  expect_eq "$RC" 2 "unknown option" || return 1
  expect_match "$ERR" "unknown option '--bogus'" || return 1
  run_sh writer --name no_slash
  expect_eq "$RC" 2 "bad --name" || return 1
  expect_match "$ERR" "--name must look like /name" || return 1
  run_sh reader --wait soon
  expect_eq "$RC" 2 "bad --wait" || return 1
  run_sh writer --socket
  expect_eq "$RC" 2 "--socket without a value" || return 1
  run_sh writer --help
  expect_eq "$RC" 0 "--help" || return 1
  expect_match "$OUT" "--seqpacket" "help" || return 1
  run_sh writer --name "$NAME" --socket "$(printf '/tmp/%0120d' 0)"
  [ "$RC" -ne 0 ] || { fail "a socket path over 107 bytes was accepted"; return 1; }
  expect_match "$ERR" "too long" || return 1
  d56_gone
}

# A socket path that is a regular file is never deleted; the writer removes its own segment.
not_a_socket() {
  echo "precious" >"$SOCK"
  run_sh writer --name "$NAME" --socket "$SOCK"
  expect_eq "$RC" 1 "exit status" || return 1
  expect_match "$ERR" "not a socket" || return 1
  expect_eq "$(cat "$SOCK")" "precious" "the file" || return 1
  rm -f "$SOCK"
  d56_gone
}

# SIGTERM: the writer shuts down as -t does (status 143): its readers are told and end.
sigterm() {
  d56_start w lua writer || return 1
  d56_wait_line w 'listen success' || return 1
  d56_start r lua reader || return 1
  d56_wait_line r 'epoll wait start' || return 1
  local wpid
  wpid=$(cat "/proc/${D56_PID[w]}/task/${D56_PID[w]}/children")
  kill -TERM "${wpid%% *}"
  d56_expect_rc w 143 5 || return 1
  d56_expect_rc r 0 2 || return 1
  expect_match "$(cat "$WORK/r.out")" "writer shut down" || return 1
  d56_gone
}

# SIGKILL: nothing runs in the writer; its readers see it die and say so.
sigkill() {
  d56_start w lua writer || return 1
  d56_wait_line w 'listen success' || return 1
  d56_start r lua reader || return 1
  d56_wait_line r 'epoll wait start' || return 1
  local wpid
  wpid=$(cat "/proc/${D56_PID[w]}/task/${D56_PID[w]}/children")
  kill -KILL "${wpid%% *}"
  d56_expect_rc r 1 2 || return 1
  expect_match "$(cat "$WORK/r.err")" "writer died" || return 1
  rm -f "/dev/shm$NAME" "$SOCK"
}

# A reader started first waits for the writer (--wait), then works; with no writer at all it
# gives up after --wait seconds with a message.
reader_waits() {
  d56_start r lua reader --wait 10 || return 1
  d56_start rc c reader --wait 10 || return 1
  sleep 0.5
  d56_start w lua writer || return 1
  d56_wait_line r 'epoll wait start' || return 1
  d56_wait_line rc 'epoll wait start' || return 1
  d56_send w "-w late writer"
  d56_wait_line r '^message=late writer$' || return 1
  d56_wait_line rc '^message=late writer$' || return 1
  d56_eof w
  d56_expect_rc r 0 1 || return 1
  d56_expect_rc rc 0 1 || return 1
  d56_expect_rc w 0 2 || return 1
  local t0=$SECONDS
  run_sh reader --name "$NAME" --socket "$SOCK" --wait 0.5
  expect_eq "$RC" 1 "no writer: exit status" || return 1
  expect_match "$ERR" "no writer at $SOCK after 0.5 s" || return 1
  [ $((SECONDS - t0)) -le 3 ] || { fail "the reader waited too long"; return 1; }
  d56_gone
}

# A reader told another segment name than the writer serves says so instead of watching the
# wrong data.
wrong_name() {
  d56_start w lua writer || return 1
  d56_wait_line w 'listen success' || return 1
  local id
  for id in lua c; do
    if [ $id = lua ]; then
      run_sh reader --name "${NAME}_other" --socket "$SOCK" --wait 2
    else
      OUT=$(timeout -k 2 10 "$C_READER" --name "${NAME}_other" --socket "$SOCK" 2>"$WORK/err"); RC=$?
      ERR=$(cat "$WORK/err")
    fi
    expect_eq "$RC" 1 "$id reader: exit status" || return 1
    expect_match "$ERR" "serves segment $NAME, not ${NAME}_other" "$id reader" || return 1
  done
  d56_send w "-t"
  d56_expect_rc w 0 5 || return 1
  d56_gone
}

d56_case "writer commands and their mistakes" commands
d56_case "end of input from a file, /dev/null and a pipe" stdin_kinds
d56_case "a 2 MiB line" huge_line
d56_case "options" options
d56_case "a socket path that is not a socket" not_a_socket
d56_case "SIGTERM to the writer" sigterm
d56_case "SIGKILL to the writer" sigkill
d56_case "a reader waits for its writer, or gives up" reader_waits
d56_case "a reader pointed at another segment" wrong_name
finish
