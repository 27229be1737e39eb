#!/usr/bin/env bash
# Usage: leakcheck.sh before|after SNAPSHOT
# Records the shared-memory objects, System V segments and semaphores, and socket paths under
# /tmp; "after" fails when anything exists that did not exist "before", and names it.
set -u
snap() {
  { ls -1 /dev/shm 2>/dev/null | sed 's|^|shm |'
    ipcs -m 2>/dev/null | awk '$1 ~ /^0x/ {print "sysv-shm " $1 " " $2}'
    ipcs -s 2>/dev/null | awk '$1 ~ /^0x/ {print "sysv-sem " $1 " " $2}'
    find /tmp -maxdepth 2 -type s 2>/dev/null | sed 's|^|sock |'
  } | sort
}
case "${1:-}" in
  before) snap > "$2" ;;
  after)
    # Objects can still be on their way out when the last test ends; give them a moment.
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      new=$(comm -13 "$2" <(snap))
      [ -z "$new" ] && { echo "leakcheck: nothing left behind"; exit 0; }
      sleep 0.3
    done
    echo "leakcheck: the suite left these behind:" >&2
    echo "$new" >&2
    exit 1 ;;
  *) echo "usage: $0 before|after SNAPSHOT" >&2; exit 2 ;;
esac
