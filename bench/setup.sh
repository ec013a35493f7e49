#!/usr/bin/env bash
# Installs what the benchmark needs, idempotently, only through the ordinary package clients:
#   nginx, wrk and redis-server from Debian (apt-get), thumbor (+ py-spy for profiling) from PyPI into
#   bench/.venv-thumbor and bench/.venv-tools, ipx (sharp/libvips) from npm into bench/.ipx.
# Each step is skipped when its stamp says it is already done at the pinned version.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON="${PYTHON:-python3}"
THUMBOR_VERSION="${THUMBOR_VERSION:-7.8.0}"
PYSPY_VERSION="${PYSPY_VERSION:-0.4.3}"
IPX_VERSION="${IPX_VERSION:-3.1.1}"

say() { printf 'bench/setup: %s\n' "$*"; }

# --- Debian: nginx (the static origin), wrk (the load generator), redis-server (`cluster`) ---
if ! command -v nginx >/dev/null 2>&1 || ! command -v wrk >/dev/null 2>&1 \
        || ! command -v redis-server >/dev/null 2>&1; then
    say "installing nginx-light, wrk and redis-server with apt-get"
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    # policy-rc.d (present in containers) keeps the packaged services from starting; where
    # there is none, Debian's Redis on 6379 is stopped (the scenario starts one of its own).
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nginx-light wrk redis-server \
        >/dev/null
    ($SUDO service redis-server stop || true) >/dev/null 2>&1
fi

# --- PyPI: each tool in a venv of its own ------------------------------------------------------
# venv_install DIR PACKAGE VERSION: once per version (a marker file says it is done).
venv_install() {
    if [ ! -f "$1/.installed-$3" ]; then
        say "installing $2 $3 into bench/$1"
        test -x "$1/bin/python" || "$PYTHON" -m venv "$1"
        "$1/bin/python" -m pip install --quiet --disable-pip-version-check "$2==$3"
        touch "$1/.installed-$3"
    fi
}
venv_install .venv-thumbor thumbor "$THUMBOR_VERSION"
venv_install .venv-tools py-spy "$PYSPY_VERSION"  # the sampling profiler of --profile

# --- npm: ipx (sharp + its bundled libvips) ---------------------------------------------------
if [ ! -f .ipx/.installed-"$IPX_VERSION" ]; then
    say "installing ipx $IPX_VERSION into bench/.ipx"
    mkdir -p .ipx
    npm install --prefix .ipx --no-audit --no-fund --loglevel=error "ipx@$IPX_VERSION"
    touch .ipx/.installed-"$IPX_VERSION"
fi
say "ready"
