#!/usr/bin/env bash
# One writer, three readers of mixed kinds, each with its own eventfd: every reader sees every
# update in order (the writer pauses until all have shown one before the next), a reader that
# joins late sees only what comes after it, one that leaves early does not disturb the others,
# and after -t all readers end with status 0 within 1 s and nothing is left behind.
. "$(dirname "$0")/day56_lib.sh"

many() {
  local wkind=$1
  shift
  local readers=("$@") i id
  d56_start w "$wkind" writer || return 1
  d56_wait_line w 'listen success' || return 1
  for i in "${!readers[@]}"; do d56_start "r$i" "${readers[$i]}" reader || return 1; done
  for i in "${!readers[@]}"; do d56_wait_line "r$i" 'epoll wait start' || return 1; done
  local n
  for n in 1 2 3 4 5; do
    d56_send w "-w update $n"
    for i in "${!readers[@]}"; do d56_wait_line "r$i" "^message=update $n\$" 5 || return 1; done
    sleep 0.05
  done
  # A reader that joins now gets no block at start, then the next update.
  d56_start late lua reader || return 1
  d56_wait_line late 'epoll wait start' || return 1
  # One that leaves (killed) is dropped by the writer; the others go on.
  d56_kill r0
  d56_wait_exit r0 2 || return 1
  d56_send w "-w after the late one"
  for id in r1 r2 late; do d56_wait_line "$id" '^message=after the late one$' || return 1; done
  d56_send w "-t"
  for id in r1 r2 late; do d56_expect_rc "$id" 0 1 || return 1; done
  d56_expect_rc w 0 2 || return 1

  # Every remaining reader printed every update once, in order, with the lab's counters.
  local want="" got
  for n in 1 2 3 4 5; do want+="[INFO] shm_data:"$'\n'"counter=$((n + 1))"$'\n'"message=update $n"$'\n'; done
  want+="[INFO] shm_data:"$'\n'"counter=7"$'\n'"message=after the late one"$'\n'"[INFO] writer shut down"
  for id in r1 r2; do
    got=$(tail -n +4 "$WORK/$id.out")
    expect_eq "$got" "$want" "$id output" || return 1
  done
  got=$(tail -n +4 "$WORK/late.out")
  expect_eq "$got" $'[INFO] shm_data:\ncounter=7\nmessage=after the late one\n[INFO] writer shut down' \
    "late reader output" || return 1
  for id in w r1 r2 late; do expect_eq "$(cat "$WORK/$id.err")" "" "$id stderr" || return 1; done
  d56_gone
}

d56_case "lua writer, readers c lua lua" many lua c lua lua
d56_case "c writer, readers lua lua c" many c lua lua c
finish
