#!/usr/bin/env bash
# `shmhost bench` end to end: --quick prints one table with every row and every ratio a
# positive finite number, --json says the same as a document a parser accepts, --only limits
# the rows, a binary without its C baseline prints the table without the C columns, misuse is
# a usage error, and a run leaves no process, segment or socket behind. Speed is never
# checked: the machine may be as slow and as busy as it likes.
. "$(dirname "$0")/lib.sh"

: "${SHMHOST_BUILD:=$(dirname "$SHMHOST")}"
BASELINE="$SHMHOST_BUILD/bench/baseline"
MECHS="ring sem eventfd futex spin pipe unix"

# Processes a bench run starts: runners and peers (this shmhost running bench.lua) and the C
# baseline of this build. None may outlive the run.
leftovers() {
  pgrep -af -- "^$SHMHOST .*bench(\.lua)? --(run|peer) " 2>/dev/null
  pgrep -af -- "^$BASELINE( |$)" 2>/dev/null
  return 0
}

# Named objects: bench makes none (memfd segments, abstract sockets, pipes), so any shm object
# or socket path with "bench" in its name is one it should not have left.
named() {
  { ls -1 /dev/shm 2>/dev/null; find /tmp -maxdepth 2 -type s 2>/dev/null; } | grep -i bench | sort
}

# check_table FILE [MECH...]: the text table's shape. Each section starts with its header
# (THROUGHPUT or LATENCY, "impl", the unit, then one "vs X" label per ratio column); then the
# base row (memcpy or cacheline, C) and, per mechanism, a C row and a Lua row. A row is either
# a value and one cell per column, each a positive finite number or "-" (only the "vs C same"
# column of a C row). Every row is measured: an "unavailable: REASON" row fails the test (the
# Lua futex row included, now that seg:futex_wait exists).
check_table() {
  local file=$1; shift
  local mechs="$*"
  awk -v mechs="$mechs" '
    function fail(msg) { print "table: " msg " at line " NR ": [" $0 "]" > "/dev/stderr"; bad = 1 }
    function positive(s) { return s ~ /^[0-9]+(\.[0-9]+)?(e[-+][0-9]+)?$/ && s + 0 > 0 }
    BEGIN {
      n = split(mechs, m, " ")
      for (s = 1; s <= 2; s++) {
        k = 0
        want[s, ++k] = (s == 1 ? "memcpy C" : "cacheline C")
        for (i = 1; i <= n; i++) { want[s, ++k] = m[i] " C"; want[s, ++k] = m[i] " Lua" }
        nwant[s] = k
      }
    }
    /^(THROUGHPUT|LATENCY) / {
      sec = ($1 == "THROUGHPUT") ? 1 : 2
      seen[sec] = 1; row = 0; ncols = 0; samecol = 0
      if ($2 != "impl") fail("no impl column")
      if ($3 != (sec == 1 ? "MB/s" : "us")) fail("unit " $3)
      for (i = 4; i <= NF; i++) if ($i == "vs") { ncols++; if ($(i+1) " " $(i+2) == "C same") samecol = ncols }
      if (ncols < 3) fail("only " ncols " ratio columns")
      next
    }
    sec && NF > 0 {
      row++
      if (want[sec, row] != $1 " " $2) fail("expected row [" want[sec, row] "]")
      if ($3 == "unavailable:") { fail("unavailable row"); next }
      if (NF != 3 + ncols) fail("expected " 3 + ncols " cells")
      if (!positive($3)) fail("value " $3)
      for (c = 1; c <= ncols; c++) {
        cell = $(3 + c)
        if (cell == "-" && c == samecol && $2 == "C") continue
        if (!positive(cell)) fail("ratio " cell " in column " c)
      }
      rows[sec] = row
    }
    END {
      if (!seen[1] || !seen[2]) fail("missing a section")
      for (s = 1; s <= 2; s++) if (rows[s] != nwant[s]) fail("section " s ": " rows[s] " rows, expected " nwant[s])
      exit bad
    }' "$file"
}

# A JSON reader in Lua (no JSON tool is required on the machine): parses the document and
# checks every row of both sections: a positive finite value and positive finite ratios; the
# rows asked for, C and Lua; the baseline path.
JSONCHECK='
local text, baseline, mechs = io.read("a"), arg[1], {}
for w in arg[2]:gmatch("%S+") do mechs[#mechs + 1] = w end
local pos = 1
local function ws() pos = text:find("%S", pos) or #text + 1 end
local function fail(msg) error(("json: %s at byte %d"):format(msg, pos), 0) end
local value
local function str()
  local s, e = text:find("^\"[^\"\\]*\"", pos)
  if not s then fail("string") end
  pos = e + 1
  return text:sub(s + 1, e - 1)
end
function value()
  ws()
  local c = text:sub(pos, pos)
  if c == "{" then
    local t = {}
    pos = pos + 1; ws()
    if text:sub(pos, pos) == "}" then pos = pos + 1; return t end
    repeat
      ws(); local k = str(); ws()
      if text:sub(pos, pos) ~= ":" then fail("colon") end
      pos = pos + 1
      t[k] = value(); ws()
      c = text:sub(pos, pos); pos = pos + 1
    until c ~= ","
    if c ~= "}" then fail("object end") end
    return t
  elseif c == "[" then
    local t = {}
    pos = pos + 1; ws()
    if text:sub(pos, pos) == "]" then pos = pos + 1; return t end
    repeat
      t[#t + 1] = value(); ws()
      c = text:sub(pos, pos); pos = pos + 1
    until c ~= ","
    if c ~= "]" then fail("array end") end
    return t
  elseif c == "\"" then return str()
  end
  local s, e = text:find("^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
  if not s then fail("value") end
  pos = e + 1
  return tonumber(text:sub(s, e))
end
local doc = value(); ws()
if pos <= #text then fail("trailing text") end
local function positive(x) return type(x) == "number" and x > 0 and x < math.huge end
assert(doc.baseline == baseline, "baseline: " .. tostring(doc.baseline))
assert(doc.baseline_error == nil, "baseline_error: " .. tostring(doc.baseline_error))
for _, sec in ipairs{"throughput", "latency"} do
  local rows = assert(doc[sec], "no " .. sec)
  local want = {(sec == "throughput" and "memcpy" or "cacheline") .. "/c"}
  for _, m in ipairs(mechs) do want[#want + 1] = m .. "/c"; want[#want + 1] = m .. "/lua" end
  assert(#rows == #want, sec .. ": " .. #rows .. " rows, expected " .. #want)
  for i, r in ipairs(rows) do
    local id = r.mech .. "/" .. r.impl
    assert(id == want[i], sec .. " row " .. i .. ": " .. id .. ", expected " .. want[i])
    assert(not r.unavailable, id .. " unavailable: " .. tostring(r.unavailable))
    do
      assert(positive(r.value), id .. ": value " .. tostring(r.value))
      assert(r.unit == (sec == "throughput" and "B/s" or "ns"), id .. ": unit")
      local n = 0
      for k, x in pairs(r.ratios) do
        n = n + 1
        assert(positive(x), id .. ": ratio " .. k .. " = " .. tostring(x))
      end
      -- memcpy or cacheline, the C ring (throughput), the pipe; and C for a Lua row
      local expect = (sec == "throughput" and 3 or 2) + (r.impl == "lua" and 1 or 0)
      assert(n == expect, id .. ": " .. n .. " ratios, expected " .. expect)
    end
  end
end
print("json ok")
'

case_quick_table() {
  local before
  before=$(named)
  run_sh 120 bench --quick
  [ "$RC" -eq 0 ] || { fail "bench --quick: status $RC: $ERR"; return 1; }
  printf '%s\n' "$OUT" > "$WORK/table"
  expect_match "$OUT" "^shmhost bench: " "first line" || return 1
  expect_eq "$(sed -n 2p "$WORK/table")" "C baseline: $BASELINE" "baseline line" || return 1
  expect_match "$(grep '^THROUGHPUT' "$WORK/table")" "vs memcpy +vs C ring +vs C pipe +vs C same$" "throughput columns" || return 1
  expect_match "$(grep '^LATENCY' "$WORK/table")" "vs cacheline +vs C pipe +vs C same$" "latency columns" || return 1
  check_table "$WORK/table" $MECHS || return 1
  [ -z "$(leftovers)" ] || { fail "processes left: $(leftovers)"; return 1; }
  expect_eq "$(named)" "$before" "named objects" || return 1
}

case_quick_json() {
  run_sh 120 bench --quick --json
  [ "$RC" -eq 0 ] || { fail "bench --quick --json: status $RC: $ERR"; return 1; }
  expect_eq "$(printf '%s\n' "$OUT" | wc -l)" "1" "one line of JSON" || return 1
  local r
  r=$(printf '%s' "$OUT" | "$SHMHOST" -e "$JSONCHECK" "$BASELINE" "$MECHS" 2>&1) || { fail "$r"; return 1; }
  expect_eq "$r" "json ok" || return 1
  [ -z "$(leftovers)" ] || { fail "processes left: $(leftovers)"; return 1; }
}

# --only: just those rows (and the base rows); other options reach both sides.
case_only() {
  run_sh 120 bench --quick --only sem,unix --size 100 --count 50 --rounds 1
  [ "$RC" -eq 0 ] || { fail "status $RC: $ERR"; return 1; }
  printf '%s\n' "$OUT" > "$WORK/only"
  expect_match "$(head -1 "$WORK/only")" "50 messages of 100 bytes, latency of 50 round trips.*best of 1 round" "header" || return 1
  check_table "$WORK/only" sem unix || return 1
}

# Sizes below the 8-byte sequence number and sizes past a pipe's buffer both arrive whole.
case_sizes() {
  local size
  for size in 1 200000; do
    run_sh 120 bench --only ring,pipe,unix,sem --size "$size" --count 20 --rounds 1 --json
    [ "$RC" -eq 0 ] || { fail "--size $size: status $RC: $ERR"; return 1; }
    local r
    r=$(printf '%s' "$OUT" | "$SHMHOST" -e "$JSONCHECK" "$BASELINE" "ring sem pipe unix" 2>&1) ||
      { fail "--size $size: $r"; return 1; }
  done
}

# A shmhost whose directory has no bench/baseline (and no ../libexec/shmhost/baseline): the
# table says so and keeps the columns it can fill, against the Lua pipe.
case_no_baseline() {
  mkdir -p "$WORK/bin"
  cp "$SHMHOST" "$WORK/bin/shmhost"
  OUT=$(SHMHOST_PATH="$SHMHOST_SRC/scripts" timeout -k 2 120 "$WORK/bin/shmhost" bench --quick --only ring \
        2>"$WORK/stderr" </dev/null); RC=$?
  [ "$RC" -eq 0 ] || { fail "status $RC: $(cat "$WORK/stderr")"; return 1; }
  expect_match "$OUT" "C baseline: unavailable \(no C baseline at $WORK/bin/bench/baseline" "baseline line" || return 1
  expect_match "$(printf '%s\n' "$OUT" | grep '^THROUGHPUT')" "MB/s +vs Lua pipe$" "columns" || return 1
  expect_match "$(printf '%s\n' "$OUT" | grep '^ring ')" "^ring +Lua +[0-9.]+ +[0-9.e+-]+$" "ring row" || return 1
  ! printf '%s\n' "$OUT" | grep -q '^ring  *C' || { fail "a C row without a baseline"; return 1; }
}

case_misuse() {
  run_sh bench --only nosuch
  expect_eq "$RC" 2 "--only nosuch" || return 1
  expect_match "$ERR" "unknown name 'nosuch'" || return 1
  run_sh bench --size 0
  expect_eq "$RC" 2 "--size 0" || return 1
  run_sh bench --count many
  expect_eq "$RC" 2 "--count many" || return 1
  run_sh bench --frobnicate
  expect_eq "$RC" 2 "--frobnicate" || return 1
  expect_match "$ERR" "usage: shmhost bench" || return 1
  # The roles are internal, but a wrong one is still a clear error, not a crash.
  run_sh bench --run nosuch latency
  expect_eq "$RC" 2 "--run nosuch" || return 1
}

# The C baseline on its own: its line format, and its own misuse.
case_baseline_alone() {
  local out rc
  out=$(timeout -k 2 60 "$BASELINE" --quick --only cacheline,ring,eventfd 2>&1); rc=$?
  [ "$rc" -eq 0 ] || { fail "baseline: status $rc: $out"; return 1; }
  expect_eq "$(printf '%s\n' "$out" | grep -c '^result ')" "5" "result lines" || return 1
  printf '%s\n' "$out" | awk '
    !/^result mech=[a-z]+ metric=(throughput|latency) size=[0-9]+ count=[0-9]+ seconds=[0-9.]+ value=[0-9.e+]+ unit=(B\/s|ns)$/ { print "bad line: " $0; bad = 1 }
    { split($7, v, "="); if (v[2] + 0 <= 0) { print "not positive: " $0; bad = 1 } }
    END { exit bad }' || return 1
  "$BASELINE" --only nosuch >/dev/null 2>&1
  expect_eq "$?" 2 "baseline --only nosuch" || return 1
  "$BASELINE" --size -3 >/dev/null 2>&1
  expect_eq "$?" 2 "baseline --size -3" || return 1
}

# Killed in the middle, bench takes its runners, peers and baseline with it.
case_killed() {
  timeout -k 2 60 "$SHMHOST" bench --only sem,futex,spin --count 100000000 --deadline 50 >/dev/null 2>&1 &
  local tpid=$!
  local i
  for i in $(seq 100); do [ -n "$(leftovers)" ] && break; sleep 0.1; done
  [ -n "$(leftovers)" ] || { kill -- "$tpid" 2>/dev/null; fail "nothing started"; return 1; }
  kill -TERM "$tpid"
  wait "$tpid" 2>/dev/null
  # timeout passes SIGTERM on to shmhost, which ends after cleanup; the children notice
  # their parent's death within 50 ms (runners, peers) or at once (baseline, PDEATHSIG).
  for i in $(seq 50); do [ -z "$(leftovers)" ] && break; sleep 0.1; done
  [ -z "$(leftovers)" ] || { fail "left running: $(leftovers)"; return 1; }
}

[ -x "$BASELINE" ] || { echo "no C baseline at $BASELINE (build the shmhost-bench-baseline target)"; exit 1; }
t "bench --quick: the table" case_quick_table
t "bench --quick --json" case_quick_json
t "bench --only, --size, --count, --rounds" case_only
t "bench: tiny and large messages" case_sizes
t "bench without its C baseline" case_no_baseline
t "bench misuse" case_misuse
t "the C baseline alone" case_baseline_alone
t "bench killed mid-run leaves nothing running" case_killed
finish
