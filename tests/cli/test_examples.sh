#!/usr/bin/env bash
# The custom examples (examples/*.lua): the README's script is examples/counter.lua word for
# word and keeps every increment when two copies run at once; c_struct_peer's C program
# compiles and agrees with the layout on every offset and field; both are listed by -l.
. "$(dirname "$0")/lib.sh"

EX="$SHMHOST_SRC/examples"

# The ```lua block of README.md is the example file, so the README cannot drift from it.
c_readme_is_the_example() {
  local block
  block=$(awk '/^```lua$/ {f = 1; next} /^```$/ {f = 0} f' "$SHMHOST_SRC/README.md")
  [ -n "$block" ] || fail "no lua block in README.md" || return 1
  [ "$block" == "$(cat "$EX/counter.lua")" ] ||
    fail "README.md's script and examples/counter.lua differ: $(diff <(printf '%s\n' "$block") "$EX/counter.lua")"
}

# Two copies at once on one object: the one that ends last sees all 200000 increments. The
# copy runs on a name of this test's own, so parallel runs never share the object.
c_counter_twice() {
  local name="/${TAG}_counter" a b ra rb
  sed "s|\"/counter_demo\"|\"$name\"|" "$EX/counter.lua" > "$WORK/counter.lua"
  grep -q "$name" "$WORK/counter.lua" || fail "the object name was not found in counter.lua" || return 1
  timeout -k 2 60 "$SHMHOST" "$WORK/counter.lua" > "$WORK/a.out" 2> "$WORK/a.err" &
  a=$!
  timeout -k 2 60 "$SHMHOST" "$WORK/counter.lua" > "$WORK/b.out" 2> "$WORK/b.err" &
  b=$!
  wait "$a"; ra=$?
  wait "$b"; rb=$?
  [ "$ra" -eq 0 ] && [ "$rb" -eq 0 ] || fail "status $ra and $rb: $(cat "$WORK/a.err" "$WORK/b.err")" || return 1
  local va vb
  va=$(sed -n 's/^counter =\t\([0-9]*\)$/\1/p' "$WORK/a.out")
  vb=$(sed -n 's/^counter =\t\([0-9]*\)$/\1/p' "$WORK/b.out")
  [ -n "$va" ] && [ -n "$vb" ] || fail "output: [$(cat "$WORK/a.out")] [$(cat "$WORK/b.out")]" || return 1
  local hi=$(( va > vb ? va : vb )) lo=$(( va < vb ? va : vb ))
  expect_eq "$hi" 200000 "the last copy's counter" || return 1
  [ "$lo" -ge 100000 ] || fail "the first copy ended at $lo, below its own 100000" || return 1
  [ ! -e "/dev/shm$name" ] || fail "/dev/shm$name left behind"
}

# Alone, as printed: 100000.
c_counter_alone() {
  local name="/${TAG}_counter1"
  sed "s|\"/counter_demo\"|\"$name\"|" "$EX/counter.lua" > "$WORK/counter1.lua"
  run_sh 60 "$WORK/counter1.lua"
  expect_eq "$RC" 0 status && expect_eq "$OUT" $'counter =\t100000' && [ ! -e "/dev/shm$name" ]
}

c_struct_peer() {
  run_sh 120 c_struct_peer
  expect_eq "$RC" 0 "status ($ERR)" || { echo "$OUT" >&2; return 1; }
  expect_match "$(tail -n 1 <<<"$OUT")" '^PASS' "last line" || { echo "$OUT" >&2; return 1; }
  expect_match "$OUT" 'struct telemetry \{' "the C declaration" || return 1
  if command -v cc > /dev/null; then
    expect_match "$OUT" 'offset updates [0-9]+' "the C program's offsets" &&
      expect_match "$OUT" 'seen seq=1099511627779 name=set by Lua' "what C saw" &&
      expect_match "$OUT" 'updates=42 readings\[8\]=3.75 name=set by C pid [0-9]+' "what Lua saw"
  fi
}

# --print gives a C program that compiles on its own (when a compiler is here).
c_struct_peer_print() {
  run_sh 20 c_struct_peer --print
  expect_eq "$RC" 0 status && expect_match "$OUT" '^/\* telemetry_peer.c' || return 1
  command -v cc > /dev/null || return 0
  printf '%s\n' "$OUT" > "$WORK/peer.c"
  cc -Wall -Wextra -Werror -o "$WORK/peer" "$WORK/peer.c" -pthread 2>&1 || fail "cc failed"
}

c_struct_peer_usage() {
  run_sh 20 c_struct_peer --bogus
  expect_eq "$RC" 2 status && expect_match "$ERR" '^usage: shmhost c_struct_peer'
}

c_listed() {
  local list
  list=$("$SHMHOST" -l) || return 1
  expect_match "$list" '^counter +counter.lua: run it twice' "shmhost -l" &&
    expect_match "$list" 'c_struct_peer +A C struct shared with a C program' "shmhost -l"
}

t "README's script is examples/counter.lua" c_readme_is_the_example
t "counter alone counts 100000" c_counter_alone
t "counter twice at once keeps every increment" c_counter_twice
t "c_struct_peer: C and Lua agree byte for byte" c_struct_peer
t "c_struct_peer --print compiles" c_struct_peer_print
t "c_struct_peer bad argument" c_struct_peer_usage
t "examples are listed by shmhost -l" c_listed
finish
