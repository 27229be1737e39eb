#!/usr/bin/env bash
# A writer killed with SIGKILL: it can neither set activation to false nor remove anything.
# Its readers (both kinds) see the control connection end, say on stderr that the writer
# died and exit 1. The segment and the socket stay behind, stale; a new writer (of the other
# kind) replaces them with a `warning:` line, and a new reader works with it from counter=2.
. "$(dirname "$0")/day56_lib.sh"

killed() {
  local first=$1 second=$2
  d56_start w "$first" writer || return 1
  d56_wait_line w 'listen success' || return 1
  d56_start rc c reader || return 1
  d56_start rl lua reader || return 1
  d56_wait_line rc 'epoll wait start' || return 1
  d56_wait_line rl 'epoll wait start' || return 1
  d56_send w "-w before the crash"
  d56_wait_line rc '^message=before the crash$' || return 1
  d56_wait_line rl '^message=before the crash$' || return 1
  d56_kill w
  d56_wait_exit w 5 || return 1
  d56_expect_rc rc 1 2 || return 1
  d56_expect_rc rl 1 2 || return 1
  local id
  for id in rc rl; do
    expect_match "$(cat "$WORK/$id.err")" 'writer died' "$id stderr" || return 1
    expect_eq "$(grep -c 'writer shut down' "$WORK/$id.out")" 0 "$id shut-down lines" || return 1
  done
  [ -e "/dev/shm$NAME" ] || { fail "the killed writer's segment should be left, stale"; return 1; }
  [ -S "$SOCK" ] || { fail "the killed writer's socket should be left, stale"; return 1; }

  d56_start w2 "$second" writer || return 1
  d56_wait_line w2 'listen success' || return 1
  expect_match "$(cat "$WORK/w2.err")" "^warning: .*$NAME" "new writer's stderr" || return 1
  d56_start r2 "$first" reader || return 1
  d56_wait_line r2 'epoll wait start' || return 1
  d56_send w2 "-w after the crash"
  d56_wait_line r2 '^message=after the crash$' || return 1
  expect_match "$(cat "$WORK/r2.out")" $'counter=2\n' "new reader" || return 1
  d56_eof w2 # end of input is -t
  d56_expect_rc r2 0 1 || return 1
  d56_expect_rc w2 0 2 || return 1
  d56_gone
}

# A second writer while one is alive refuses, naming the live one's pid, and changes nothing.
second() {
  local first=$1 second=$2
  d56_start w "$first" writer || return 1
  d56_wait_line w 'listen success' || return 1
  d56_start r c reader || return 1
  d56_wait_line r 'epoll wait start' || return 1
  local wpid
  # The writer runs under its `timeout`, as its only child.
  wpid=$(cat "/proc/${D56_PID[w]}/task/${D56_PID[w]}/children")
  wpid=${wpid%% *}
  d56_start w2 "$second" writer || return 1
  d56_eof w2
  d56_expect_rc w2 1 5 || return 1
  expect_match "$(cat "$WORK/w2.err")" "pid $wpid" "second writer's message" || return 1
  expect_eq "$(cat "$WORK/w2.out")" "" "second writer's stdout" || return 1
  # The live writer and its reader are untouched.
  d56_send w "-w still here"
  d56_wait_line r '^message=still here$' || return 1
  expect_match "$(cat "$WORK/r.out")" $'counter=2\n' "reader" || return 1
  d56_send w "-t"
  d56_expect_rc r 0 1 || return 1
  d56_expect_rc w 0 2 || return 1
  d56_gone
}

d56_case "c writer killed, lua writer takes over" killed c lua
d56_case "lua writer killed, c writer takes over" killed lua c
d56_case "second lua writer refused by a live c writer" second c lua
d56_case "second c writer refused by a live lua writer" second lua c
d56_case "second lua writer refused by a live lua writer" second lua lua
finish
