#!/usr/bin/env bash
# Run Windows test programs under wine, bounded in time, inside a throw-away
# network namespace with only loopback when we may create one
# (docs/engine.md, "Windows").
# Usage: scripts/wine-run.sh prog.exe [args...]
#        scripts/wine-run.sh --list FILE   (one "prog.exe args..." per line, all
#        run in one namespace and one wine session; fails if any fails)
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
# The prefix lives outside the source tree: its dosdevices/z: links to / and a
# build tool walking the tree would follow it.
export WINEPREFIX=${WINEPREFIX:-${XDG_CACHE_HOME:-$HOME/.cache}/mediabot/wineprefix} WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
mkdir -p "$WINEPREFIX"
# first use of a prefix sets it up (about 10 s); later runs reuse it
[ -f "$WINEPREFIX/system.reg" ] || wineboot -i >/dev/null 2>&1 || true
# One persistent wineserver for the whole run: by default it exits a few
# seconds after its last client, and a program started while it shuts down
# dies with "wine client error: recvmsg: Connection reset by peer".
wineserver -p 2>/dev/null || true
if [ "${1:-}" = --list ]; then
    failed=()
    while read -r exe args; do
        [ -n "$exe" ] || continue
        t0=$(date +%s%N)
        # shellcheck disable=SC2086
        timeout 300 wine "$(readlink -f "$exe")" $args </dev/null
        r=$?
        ms=$(( ($(date +%s%N) - t0) / 1000000 ))
        if [ $r = 0 ]; then
            echo "wine: $(basename "$exe") $args: ok (${ms} ms)"
        else
            echo "wine: $(basename "$exe") $args: FAILED (exit $r)"
            failed+=("$(basename "$exe")")
        fi
    done < "$2"
    wineserver -k 2>/dev/null || true
    if [ ${#failed[@]} -gt 0 ]; then
        echo "wine: failed: ${failed[*]}"
        exit 1
    fi
    exit 0
fi
exe=$(readlink -f "$1"); shift
timeout 300 wine "$exe" "$@"
r=$?
wineserver -k 2>/dev/null || true
exit $r
