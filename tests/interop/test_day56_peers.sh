#!/usr/bin/env bash
# Peers that break the protocol or the segment, against both readers and the shmhost writer:
# every case ends with a clear message and status 1 (never a crash, a hang or a leak).
. "$(dirname "$0")/day56_lib.sh"

# A fake writer: listens on the socket and answers the first connection the way MODE says,
# then keeps the connection open until killed.
FAKE='
local shm = require "shmhost"
local mode, path, name = arg[1], arg[2], arg[3]
local srv = assert(shm.unix.listen{path = path})
io.stdout:write("listening\n")
local c = srv:accept()
if mode == "close" then c:close()
elseif mode == "nofd" then c:send("day56 " .. name .. "\n")
elseif mode == "fd" then c:send("day56 " .. name .. "\n", {shm.eventfd{}})
elseif mode == "silent" then -- accepts and never says anything
elseif mode == "small" then
  local seg = assert(shm.open(name, {create = true, size = 16}))
  c:send("day56 " .. name .. "\n", {shm.eventfd{}})
end
shm.sleep(20)
'

# Both readers against a fake writer in MODE: status 1 and a message matching REGEX.
fake() {
  local mode=$1 re=$2 kind
  for kind in c lua; do
    d56_start_cmd fake "$SHMHOST" -e "$FAKE" "$mode" "$SOCK" "$NAME" || return 1
    d56_wait_line fake listening || return 1
    d56_start r "$kind" reader || return 1
    d56_expect_rc r 1 10 || return 1 # the silent case takes the readers' 5 s hello deadline
    expect_match "$(cat "$WORK/r.err")" "$re" "$kind reader's message" || return 1
    expect_eq "$(grep -c 'epoll wait start' "$WORK/r.out")" 0 "$kind reader's output" || return 1
    d56_kill fake
    d56_wait_exit fake 5
    rm -f "$SOCK" "/dev/shm$NAME"
  done
}

# A client that sends garbage (bytes, descriptors) to the shmhost or C writer is ignored;
# the real reader keeps getting updates.
garbage_client() {
  local wkind=$1
  d56_start w "$wkind" writer || return 1
  d56_wait_line w 'listen success' || return 1
  d56_start r lua reader || return 1
  d56_wait_line r 'epoll wait start' || return 1
  timeout -k 2 10 "$SHMHOST" -e '
    local shm = require "shmhost"
    for i = 1, 20 do
      -- wait: a full backlog (EAGAIN) while the writer is busy is retried, not an error.
      local c = assert(shm.unix.connect{path = arg[1], wait = 5})
      c:send(string.rep("\255garbage", i * 100), {shm.eventfd{}, shm.eventfd{}})
      if i % 2 == 0 then c:close() end   -- half hang up at once, half at exit
    end' "$SOCK" || { fail "the garbage client failed"; return 1; }
  d56_send w "-w still fine"
  d56_wait_line r '^message=still fine$' || return 1
  d56_send w "-t"
  d56_expect_rc r 0 1 || return 1
  d56_expect_rc w 0 2 || return 1
  expect_eq "$(cat "$WORK/w.err")" "" "writer stderr" || return 1
  d56_gone
}

# The segment truncated under a running writer and reader: touching it is an error in each
# (the shmhost SIGBUS guard, the C reader's fstat check), not a crash; both end with status 1
# and the writer's cleanup still removes the segment and the socket.
truncated() {
  local rkind=$1
  d56_start w lua writer || return 1
  d56_wait_line w 'listen success' || return 1
  d56_start r "$rkind" reader || return 1
  d56_wait_line r 'epoll wait start' || return 1
  truncate -s 0 "/dev/shm$NAME"
  d56_send w "-w into nothing"
  d56_expect_rc w 1 5 || return 1
  d56_expect_rc r 1 5 || return 1
  expect_match "$(cat "$WORK/w.err")" "trunc" "writer's message" || return 1
  expect_match "$(cat "$WORK/r.err")" "trunc|cannot lock|cannot read" "reader's message" || return 1
  d56_gone
}

d56_case "readers: the writer hangs up at once" fake close "closed the connection before sending an eventfd"
d56_case "readers: the hello carries no descriptor" fake nofd "carried no (eventfd|descriptor)"
d56_case "readers: the listener never sends a hello" fake silent "nothing from .* within 5 s"
d56_case "readers: the segment does not exist" fake fd "shm_open.*No such file"
d56_case "readers: the segment is too small" fake small "less than struct shm_data"
d56_case "lua writer: a client sending garbage" garbage_client lua
d56_case "c writer: a client sending garbage" garbage_client c
d56_case "segment truncated under the writer and a lua reader" truncated lua
d56_case "segment truncated under the writer and a c reader" truncated c
finish
