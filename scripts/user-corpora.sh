#!/bin/sh
# Real user objects, handed to the harness as a user hands them: the programs of libbpf-bootstrap
# (examples/c) and of bcc's libbpf-tools, compiled the way their Makefiles compile them (clang
# -g -O2 --target=bpf -D__TARGET_ARCH_x86 against a vmlinux.h, with clang's system include dirs
# after), then run as load-only objects over the matrix with libbpf as a second loader in every
# guest. Prints, per kernel, the programs both loaders loaded, both refused, and disagreements.
#
#   scripts/user-corpora.sh [--bootstrap DIR] [--bcc DIR] [--out DIR] [-- HARNESS_ARGS...]
#
#   --bootstrap DIR  a libbpf-bootstrap checkout (default: cloned from GitHub into the cache)
#   --bcc DIR        a bcc checkout (default: cloned from GitHub into the cache)
#   --out DIR        where objects and the JSON report go (default target/user-corpora)
#
# A source that does not compile with the installed libbpf headers (some need libbpf >= 1.2's
# bpf_ksym_exists) is listed and left out; nothing else is filtered.
set -eu

ROOT="$(cd "$(dirname "$0")/.." && pwd -P)"
CLANG="${HARNESS_CLANG:-clang-19}"
CACHE="${HARNESS_THIRDPARTY:-$ROOT/images/thirdparty}"
OUT="$ROOT/target/user-corpora"
BOOTSTRAP=""
BCC=""
while [ $# -gt 0 ]; do
    case "$1" in
        --bootstrap) BOOTSTRAP="$2"; shift 2 ;;
        --bcc) BCC="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        --) shift; break ;;
        *) echo "error: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
    esac
done

clone() { # url dir
    if [ ! -d "$2" ]; then
        mkdir -p "$(dirname "$2")"
        git clone --depth 1 "$1" "$2" >&2 || { echo "error: cannot clone $1; pass a checkout" >&2; exit 1; }
    fi
}
[ -n "$BOOTSTRAP" ] || { BOOTSTRAP="$CACHE/libbpf-bootstrap"; clone https://github.com/libbpf/libbpf-bootstrap "$BOOTSTRAP"; }
[ -n "$BCC" ] || { BCC="$CACHE/bcc"; clone https://github.com/iovisor/bcc "$BCC"; }

cd "$ROOT"
cargo build -q -p harness
HARNESS="$ROOT/target/debug/harness"
rm -rf "$OUT" && mkdir -p "$OUT/objects" "$OUT/include"
# The newest kernel of the matrix: its types are what current sources are written against.
"$HARNESS" vmlinux-h --matrix "$ROOT/kernels.toml" --kernel 7.2 -o "$OUT/include/vmlinux.h" >&2
SYSTEM_DIRS=$("$CLANG" -v -E - </dev/null 2>&1 | sed -n '/<...> search starts here/,/End of search/p' | grep '^ /' | sed 's/^ /-idirafter /' | tr '\n' ' ')

build() { # corpus-name source-dir
    skipped=""
    for src in "$2"/*.bpf.c; do
        name=$(basename "$src" .bpf.c)
        # The corpus's own headers first, then our vmlinux.h, as their Makefiles order them.
        # shellcheck disable=SC2086
        if ! "$CLANG" -g -O2 --target=bpf -D__TARGET_ARCH_x86 -I"$2" -I"$OUT/include" $SYSTEM_DIRS \
            -c "$src" -o "$OUT/objects/$1-$name.bpf.o" 2>"$OUT/$1-$name.err"; then
            skipped="$skipped $name"
            rm -f "$OUT/objects/$1-$name.bpf.o"
        fi
    done
    echo "$1: $(ls "$OUT/objects" | grep -c "^$1-") objects; not compiled here:${skipped:- none}" >&2
}
# Their own vmlinux.h (a symlink to a large per-arch header) is replaced by ours.
mkdir -p "$OUT/src/bootstrap" "$OUT/src/bcc"
cp "$BOOTSTRAP"/examples/c/*.bpf.c "$BOOTSTRAP"/examples/c/*.h "$OUT/src/bootstrap/" 2>/dev/null || true
cp "$BCC"/libbpf-tools/*.bpf.c "$BCC"/libbpf-tools/*.h "$OUT/src/bcc/" 2>/dev/null || true
rm -f "$OUT/src/bootstrap/vmlinux.h" "$OUT/src/bcc/vmlinux.h"
build bootstrap "$OUT/src/bootstrap"
build bcc "$OUT/src/bcc"

status=0
"$HARNESS" --matrix "$ROOT/kernels.toml" --programs "$OUT/objects" --libbpf \
    --report-json "$OUT/report.json" "$@" >"$OUT/run.txt" 2>&1 || status=$?
grep -E '^libbpf v|passed, .* failed' "$OUT/run.txt"
echo "whole output: $OUT/run.txt; report: $OUT/report.json (harness exit $status)"
