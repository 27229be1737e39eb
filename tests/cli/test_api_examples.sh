#!/usr/bin/env bash
# Every Lua example in docs/api.md runs as printed and exits 0, so the reference cannot drift
# from the code without this test failing.
. "$(dirname "$0")/lib.sh"

awk -v dir="$WORK" '/^```lua/{n++; f=sprintf("%s/ex%02d.lua", dir, n); b=1; next}
  /^```/{b=0; next} b{print > f}' "$SHMHOST_SRC/docs/api.md"

# Leftovers are caught by the suite's leak check, which runs after every test.
run_example() {
  OUT=$(cd "$WORK" && timeout -k 2 30 "$SHMHOST" "$1" 2>&1 </dev/null)
  expect_eq "$?" 0 "status of $(basename "$1") (output: $OUT)"
}

count=0
for f in "$WORK"/ex*.lua; do
  [ -e "$f" ] || continue
  count=$((count + 1))
  t "docs/api.md example $(basename "$f" .lua)" run_example "$f"
done
[ "$count" -gt 0 ] || { echo "no lua examples found in docs/api.md"; exit 1; }
finish
