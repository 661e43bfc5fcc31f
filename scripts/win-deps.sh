#!/usr/bin/env bash
# Windows (mingw-w64) builds of what the native core links, for the Windows
# checks in `make native-check` (docs/engine.md, "Windows"):
#   - static libcrypto from Debian bookworm's openssl source package,
#   - static libopus from Debian bookworm's opus source package,
#   - CPython 3.11 headers (Include/, PC/pyconfig.h) and an import library for
#     python3.dll (the stable ABI) from Debian bookworm's python3.11 source package.
# Sources come through apt with a private source list (no change to the system
# apt configuration; apt checks them against the signed Release files). The
# result is cached in ~/.cache/mediabot/win-deps/<versions>.r<RECIPE>, so only
# the first run builds (a few minutes); later runs return at once, offline.
#
# Usage: scripts/win-deps.sh [LINK]   prints the prefix; LINK (e.g.
# build/native/win-deps) is made a symlink to it. Layout of the prefix:
#   include/openssl, include/opus, lib/libcrypto.a, lib/libopus.a,
#   python/Include, python/PC/pyconfig.h, lib/libpython3.a, VERSIONS
# MEDIABOT_WIN_DEPS overrides the cache root. Delete a prefix to rebuild it.
set -euo pipefail

RECIPE=1 # bump when the build options below change
SUITE=bookworm
CROSS=x86_64-w64-mingw32
root=${MEDIABOT_WIN_DEPS:-${XDG_CACHE_HOME:-$HOME/.cache}/mediabot/win-deps}
link=${1:-}

finish() {
    if [ -n "$link" ]; then
        mkdir -p "$(dirname "$link")"
        ln -sfn "$1" "$link"
    fi
    echo "$1"
}

# warm: any complete prefix of this recipe (newest first)
for d in $(ls -1dt "$root"/*.r$RECIPE 2>/dev/null); do
    if [ -f "$d/.complete" ]; then
        finish "$d"
        exit 0
    fi
done

start=$(date +%s)
jobs=$(nproc 2>/dev/null || echo 2)
mkdir -p "$root"
work=$(mktemp -d "$root/.build.XXXXXX")
cleanup() {
    local pids
    pids=$(jobs -p)
    [ -z "$pids" ] || kill $pids 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
log() { echo "win-deps: $* ($(( $(date +%s) - start )) s)" >&2; }

# ---- sources: a private apt source list (docs/engine.md, "Windows") ----------
mkdir -p "$work/apt/lists/partial" "$work/apt/parts" "$work/apt/prefs" "$work/apt/cache/archives/partial" \
    "$work/dl"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -f "$keyring" ] || { echo "win-deps: $keyring missing (apt install debian-archive-keyring)" >&2; exit 1; }
printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: %s\nComponents: main\nSigned-By: %s\n' \
    "$SUITE" "$keyring" > "$work/apt/parts/src.sources"
apt_opts=(-q -o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$work/apt/parts"
          -o "Dir::State::Lists=$work/apt/lists" -o "Dir::Cache=$work/apt/cache"
          -o Dir::Etc::Preferences=/dev/null -o "Dir::Etc::PreferencesParts=$work/apt/prefs")
# as root apt would hand the download to the _apt user, who cannot enter a private cache
[ "$(id -u)" = 0 ] && apt_opts+=(-o APT::Sandbox::User=root)
apt-get "${apt_opts[@]}" update >"$work/apt.log" 2>&1 || { cat "$work/apt.log" >&2; exit 1; }
(cd "$work/dl" && apt-get "${apt_opts[@]}" source --download-only openssl opus python3.11) \
    >>"$work/apt.log" 2>&1 || { cat "$work/apt.log" >&2; exit 1; }
ossl_tar=$(ls "$work"/dl/openssl_*.orig.tar.gz)
opus_tar=$(ls "$work"/dl/opus_*.orig.tar.gz)
py_tar=$(ls "$work"/dl/python3.11_*.orig.tar.gz)
ossl_ver=$(basename "$ossl_tar" .orig.tar.gz); ossl_ver=${ossl_ver#openssl_}
opus_ver=$(basename "$opus_tar" .orig.tar.gz); opus_ver=${opus_ver#opus_}
py_ver=$(basename "$py_tar" .orig.tar.gz); py_ver=${py_ver#python3.11_}
prefix="$root/openssl-$ossl_ver+opus-$opus_ver+python-$py_ver.r$RECIPE"
stage="$work/prefix"
mkdir -p "$stage/include" "$stage/lib" "$stage/python/PC"
log "downloaded openssl $ossl_ver, opus $opus_ver, python $py_ver"

# ---- OpenSSL libcrypto: only what the tests and the extension need to link ---------
# Static, no assembler, no engines/DSO/modules; algorithms nobody here uses are
# left out to halve the build (SRTP needs AES-CTR/ECB/GCM and HMAC-SHA1 through
# EVP). -O1: these builds only back tests, so compile time matters more.
build_openssl() {
    mkdir -p "$work/openssl"
    tar xzf "$ossl_tar" -C "$work/openssl" --strip-components=1
    cd "$work/openssl"
    ./Configure mingw64 no-shared no-asm no-tests no-engine no-dso no-module no-legacy \
        no-ui-console no-autoload-config no-sock no-ssl no-tls no-dtls no-psk no-srp no-srtp \
        no-comp no-ct no-ocsp no-ts no-cms no-aria no-bf no-blake2 no-camellia no-cast no-chacha \
        no-poly1305 no-des no-dh no-dsa no-ec no-ec2m no-gost no-idea no-md4 no-mdc2 no-ocb \
        no-rc2 no-rc4 no-rmd160 no-scrypt no-seed no-siphash no-siv no-sm2 no-sm3 no-sm4 \
        no-whirlpool no-multiblock no-rfc3779 no-ktls no-uplink no-cmp no-cmac no-async no-err \
        no-filenames \
        --cross-compile-prefix=$CROSS- --prefix=/nonexistent -O1
    make -j"$jobs" build_generated
    make -j"$jobs" libcrypto.a
    mkdir -p "$stage/include/openssl"
    cp include/openssl/*.h "$stage/include/openssl/"
    cp libcrypto.a "$stage/lib/"
}

# ---- libopus: autotools cross build (its configure adds _FORTIFY_SOURCE, which
# mingw would resolve against libssp; switched off) -----------------------------------
build_opus() {
    mkdir -p "$work/opus"
    tar xzf "$opus_tar" -C "$work/opus" --strip-components=1
    cd "$work/opus"
    ./configure --host=$CROSS --prefix="$stage" --disable-shared --enable-static --disable-doc \
        --disable-extra-programs --disable-hardening CFLAGS="-O2 -D_FORTIFY_SOURCE=0"
    make -j"$jobs"
    make install
}

# ---- Python: headers and the python3.dll import library (stable ABI) ---------------
python_headers() {
    mkdir -p "$work/cpy"
    tar xzf "$py_tar" -C "$work/cpy" --strip-components=1 --wildcards \
        '*/Include/*' '*/PC/pyconfig.h' '*/PC/python3dll.c'
    cp -r "$work/cpy/Include" "$stage/python/"
    cp "$work/cpy/PC/pyconfig.h" "$stage/python/PC/"
    {
        echo "LIBRARY python3.dll"
        echo "EXPORTS"
        sed -n -e 's/^EXPORT_FUNC(\([A-Za-z0-9_]*\))$/\1/p' \
               -e 's/^EXPORT_DATA(\([A-Za-z0-9_]*\))$/\1 DATA/p' "$work/cpy/PC/python3dll.c"
    } > "$stage/lib/python3.def"
    [ "$(grep -c . "$stage/lib/python3.def")" -gt 500 ] || { echo "win-deps: python3.def looks wrong" >&2; exit 1; }
    $CROSS-dlltool -d "$stage/lib/python3.def" -l "$stage/lib/libpython3.a" -D python3.dll
}

# OpenSSL (the long part) in the background while opus and Python run. Both
# run as background jobs so that `set -e` holds inside them.
( build_openssl >"$work/openssl.log" 2>&1 ) & ossl_pid=$!
( build_opus >"$work/opus.log" 2>&1 ) & opus_pid=$!
if ! wait "$opus_pid"; then
    tail -40 "$work/opus.log" >&2; kill "$ossl_pid" 2>/dev/null || true; wait || true; exit 1
fi
log "opus built"
python_headers
if ! wait "$ossl_pid"; then
    tail -40 "$work/openssl.log" >&2; exit 1
fi
log "libcrypto built"

rm -rf "$stage/lib/pkgconfig" "$stage/lib/libopus.la" "$stage/share"
printf 'suite %s\nopenssl %s\nopus %s\npython3.11 %s\nrecipe %s\n' \
    "$SUITE" "$ossl_ver" "$opus_ver" "$py_ver" "$RECIPE" > "$stage/VERSIONS"
touch "$stage/.complete"
rm -rf "$prefix"
mv "$stage" "$prefix"
log "ready in $prefix"
finish "$prefix"
