#!/usr/bin/env bash
# Run a Windows test program under wine, bounded in time, inside a throw-away
# network namespace with only loopback when we may create one
# (../shared/PEERS.md section 11). Usage: scripts/wine-run.sh prog.exe [args...]
set -uo pipefail
if [ "${1:-}" != --inner ] && [ "$(id -u)" = 0 ] && command -v ip >/dev/null; then
    ns=mcwine$$
    if ip netns add "$ns" 2>/dev/null; then
        trap 'ip netns del "$ns" 2>/dev/null || true' EXIT
        ip netns exec "$ns" ip link set lo up
        ip netns exec "$ns" bash "$0" --inner "$@"
        exit $?
    fi
fi
[ "${1:-}" = --inner ] && shift
exe=$(readlink -f "$1"); shift
# The prefix lives outside the source tree: its dosdevices/z: links to / and a
# build tool walking the tree would follow it.
export WINEPREFIX=${WINEPREFIX:-${XDG_CACHE_HOME:-$HOME/.cache}/mediabot/wineprefix} WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
mkdir -p "$WINEPREFIX"
# first use of a prefix sets it up (about 10 s); later runs reuse it
[ -f "$WINEPREFIX/system.reg" ] || wineboot -i >/dev/null 2>&1 || true
timeout 300 wine "$exe" "$@"
r=$?
wineserver -k 2>/dev/null || true
exit $r
