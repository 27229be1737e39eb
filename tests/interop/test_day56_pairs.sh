#!/usr/bin/env bash
# The Day56 lab across implementations: each of the C writer and the shmhost writer with each
# of the C reader and the shmhost reader goes through the lab's session (two writes, a show, a
# shutdown). The reader must print exactly the lab's lines (counter=2 after the first write),
# end with status 0 within 1 s of -t, and the segment and socket must be gone.
. "$(dirname "$0")/day56_lib.sh"

READER_WANT='[INFO] connected to writer
[INFO] received eventfd
[INFO] epoll wait start
[INFO] shm_data:
counter=2
message=hello shared memory
[INFO] shm_data:
counter=3
message=second  with  spaces 
[INFO] writer shut down'

WRITER_WANT='[INFO] shm_open success
[INFO] shared memory mapped
[INFO] socket created
[INFO] socket listen success
counter=3
message=second  with  spaces '

session() {
  local wkind=$1 rkind=$2
  shift 2
  d56_start w "$wkind" writer "$@" || return 1
  d56_wait_line w 'listen success' || return 1
  d56_start r "$rkind" reader "$@" || return 1
  d56_wait_line r 'epoll wait start' || return 1
  d56_send w "-w hello shared memory"
  d56_wait_line r '^message=hello shared memory$' || return 1
  # Spaces inside and at the end of the text are part of the message.
  d56_send w "-w second  with  spaces "
  d56_wait_line r '^message=second  with  spaces $' || return 1
  d56_send w "-s"
  d56_wait_line w '^message=' || return 1
  d56_send w "-t"
  d56_expect_rc r 0 1 || return 1
  d56_expect_rc w 0 2 || return 1
  expect_eq "$(cat "$WORK/r.out")" "$READER_WANT" "reader output" || return 1
  expect_eq "$(cat "$WORK/w.out")" "$WRITER_WANT" "writer output" || return 1
  expect_eq "$(cat "$WORK/r.err")" "" "reader stderr" || return 1
  expect_eq "$(cat "$WORK/w.err")" "" "writer stderr" || return 1
  d56_gone
}

# An abstract socket has no file: its name is unique to the case like the segment's.
session_abstract() { session "$1" "$2" --abstract "${NAME#/}"; }

for w in c lua; do
  for r in c lua; do
    d56_case "$w writer, $r reader" session "$w" "$r"
  done
done
# The lab's suggested experiments, across implementations too.
d56_case "c writer, lua reader, SOCK_SEQPACKET" session c lua --seqpacket
d56_case "lua writer, c reader, SOCK_SEQPACKET" session lua c --seqpacket
d56_case "lua writer, c reader, abstract socket" session_abstract lua c
d56_case "c writer, lua reader, abstract socket" session_abstract c lua
finish
