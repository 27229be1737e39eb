#!/usr/bin/env bash
# Installs the Debian packages the build needs when they are missing, and says what it installs.
# Run by `make` before CMake configures; a no-op on a machine that has everything.
set -u
need=()
have_pc() { command -v pkg-config >/dev/null 2>&1 && pkg-config --exists "$1" 2>/dev/null; }
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
command -v cmake >/dev/null 2>&1 || need+=(cmake)
have_pc lua5.4 || need+=(liblua5.4-dev)
have_pc libuv || need+=(libuv1-dev)
have_pc lua5.4-luv || need+=(lua-luv-dev)
# The tests compare layouts with the C compiler, build C peers, and drive processes with these
# tools; a fresh minimal Debian lacks some of them.
command -v gcc >/dev/null 2>&1 || need+=(gcc)
[ -e /usr/include/stdio.h ] || need+=(libc6-dev)
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
command -v ipcs >/dev/null 2>&1 || need+=(util-linux)
command -v script >/dev/null 2>&1 || need+=(bsdutils)
command -v hexdump >/dev/null 2>&1 || need+=(bsdextrautils)
command -v cmp >/dev/null 2>&1 || need+=(diffutils)
command -v python3 >/dev/null 2>&1 || need+=(python3)
[ ${#need[@]} -eq 0 ] && exit 0

# Remove duplicates while keeping the order.
mapfile -t need < <(printf '%s\n' "${need[@]}" | awk '!seen[$0]++')
echo "shmhost: installing missing build packages: ${need[*]}" >&2
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo=(sudo); else
    echo "shmhost: not root and no sudo: install ${need[*]} by hand" >&2; exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
# A fresh machine's package lists can be empty, so refresh them first.
"${sudo[@]}" apt-get update -qq >&2 || { echo "shmhost: apt-get update failed" >&2; exit 1; }
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >&2 ||
  { echo "shmhost: apt-get install ${need[*]} failed" >&2; exit 1; }
