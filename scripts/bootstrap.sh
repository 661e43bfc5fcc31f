#!/usr/bin/env bash
# Install what building and testing mediabot needs on a fresh Debian/Ubuntu
# machine: the apt packages in scripts/apt-packages.txt (only the missing ones,
# only when we can), then a virtualenv in .venv with the package installed in
# editable mode with its test, bench and demo extras.
set -euo pipefail
cd "$(dirname "$0")/.."

mapfile -t wanted < <(grep -v '^\s*#' scripts/apt-packages.txt | sed '/^\s*$/d')
missing=()
for p in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if command -v apt-get >/dev/null; then
        SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
        echo "bootstrap: installing ${missing[*]}"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "bootstrap: missing system packages (install them yourself): ${missing[*]}" >&2
    fi
fi

PY=${PYTHON_FOR_VENV:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q --upgrade pip setuptools wheel
.venv/bin/pip install -q -e '.[test,bench,demo]'
echo "bootstrap: ok ($(.venv/bin/python --version))"
