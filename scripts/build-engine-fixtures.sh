#!/bin/sh
# Build the engine's committed ELF fixtures (harness/core-reloc/tests/fixtures/obj/*.o) from the
# C sources beside them, reproducibly (the approach of scripts/build-programs.sh: compile from
# inside the source directory, map it to a fixed name in the debug info, no compiler ident), so
# `cargo test -p core-reloc` needs no clang.
#
#   scripts/build-engine-fixtures.sh           rebuild the committed objects in place
#   scripts/build-engine-fixtures.sh --check   rebuild from a copy at another path and fail if
#                                              any byte differs from what is committed
#
# The compiler is clang-19 unless HARNESS_CLANG names another.
set -eu

CLANG="${HARNESS_CLANG:-clang-19}"
FLAGS="-g -O2 -target bpf -fno-ident"
ROOT="$(cd "$(dirname "$0")/.." && pwd -P)"
FIXTURES="$ROOT/harness/core-reloc/tests/fixtures"
# source[:define]: the objects the tests read (tests/common/mod.rs names them the same way).
VARIANTS="maps_and_calls core_layouts core_layouts:-DTARGET_LAYOUT externs map_kinds differential:-DV=0"

if ! command -v "$CLANG" >/dev/null 2>&1; then
    echo "error: BPF compiler '$CLANG' not found; install it with 'apt-get install clang-19' or set HARNESS_CLANG" >&2
    exit 1
fi

# object_name SOURCE DEFINE: core_layouts + -DTARGET_LAYOUT -> core_layouts-TARGET_LAYOUT.o
object_name() {
    tag="$(printf '%s' "$2" | sed 's/^-D//; s/=//g')"
    if [ -n "$tag" ]; then echo "$1-$tag.o"; else echo "$1.o"; fi
}

# build SOURCES_DIR OUT_DIR
build() {
    src="$(cd "$1" && pwd -P)"
    mkdir -p "$2"
    out="$(cd "$2" && pwd -P)"
    for variant in $VARIANTS; do
        name="${variant%%:*}"
        define=""
        [ "$name" = "$variant" ] || define="${variant#*:}"
        obj="$(object_name "$name" "$define")"
        # shellcheck disable=SC2086
        (cd "$src" && PWD="$src" "$CLANG" $FLAGS -I . $define "-fdebug-prefix-map=$src=fixtures" \
            -c "$name.c" -o "$out/.$obj.tmp")
        mv -f "$out/.$obj.tmp" "$out/$obj"
        echo "$(sha256sum "$out/$obj" | cut -d' ' -f1)  $obj"
    done
}

case "${1:-}" in
--check)
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    mkdir -p "$tmp/a/different/path"
    cp -R "$FIXTURES" "$tmp/a/different/path/fixtures"
    build "$tmp/a/different/path/fixtures" "$tmp/out" >/dev/null
    status=0
    for o in "$tmp"/out/*.o; do
        name="$(basename "$o")"
        if cmp -s "$o" "$FIXTURES/obj/$name"; then
            echo "reproducible  $name"
        else
            echo "DIFFERENT     $name (run scripts/build-engine-fixtures.sh and commit)" >&2
            status=1
        fi
    done
    for o in "$FIXTURES"/obj/*.o; do
        [ -f "$tmp/out/$(basename "$o")" ] || { echo "STALE         $(basename "$o") (no source variant builds it)" >&2; status=1; }
    done
    exit $status
    ;;
-h | --help)
    sed -n '2,11p' "$0"
    ;;
"")
    build "$FIXTURES" "$FIXTURES/obj"
    ;;
*)
    echo "usage: scripts/build-engine-fixtures.sh [--check]" >&2
    exit 2
    ;;
esac
