#!/bin/sh
# Build the BPF program corpus the way the harness does (harness/runner/src/corpus/build.rs).
#
#   scripts/build-programs.sh [OUT_DIR]    build programs/*.bpf.c into OUT_DIR (default target/bpf)
#   scripts/build-programs.sh --check      build twice, from two checkouts at different paths,
#                                          and compare the objects byte for byte
#
# The compiler is clang-19 unless HARNESS_CLANG names another.
set -eu

CLANG="${HARNESS_CLANG:-clang-19}"
# Keep in sync with CLANG_FLAGS in harness/runner/src/corpus/build.rs (a test checks).
FLAGS="-g -O2 -target bpf -mcpu=v2 -D__TARGET_ARCH_x86 -fno-ident -Wall -Wno-unused-function"

ROOT="$(cd "$(dirname "$0")/.." && pwd -P)"
# The compiler's own <...> search list as -idirafter, as the harness adds it (libbpf-bootstrap's way).
sys_includes() {
    "$CLANG" -v -E -x c /dev/null -o /dev/null 2>&1 |
        sed -n '/<\.\.\.> search starts here:/,/End of search list\./s/^ \(\/.*\)/-idirafter \1/p'
}

if ! command -v "$CLANG" >/dev/null 2>&1; then
    echo "error: BPF compiler '$CLANG' not found; install it with 'apt-get install clang-19' or set HARNESS_CLANG" >&2
    exit 1
fi

# build PROGRAMS_DIR OUT_DIR
build() {
    progs="$(cd "$1" && pwd -P)"
    mkdir -p "$2"
    out="$(cd "$2" && pwd -P)"
    found=0
    for src in "$progs"/*.bpf.c; do
        [ -f "$src" ] || continue
        found=1
        name="$(basename "$src" .bpf.c)"
        # shellcheck disable=SC2086
        (cd "$progs" && PWD="$progs" "$CLANG" $FLAGS -I include $(sys_includes) "-fdebug-prefix-map=$progs=programs" \
            -c "$name.bpf.c" -o "$out/.$name.bpf.o.tmp")
        mv -f "$out/.$name.bpf.o.tmp" "$out/$name.bpf.o"
        echo "$(sha256sum "$out/$name.bpf.o" | cut -d' ' -f1)  $name.bpf.o"
    done
    if [ "$found" = 0 ]; then
        echo "error: no .bpf.c sources in $progs" >&2
        exit 1
    fi
}

case "${1:-}" in
--check)
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    mkdir -p "$tmp/a" "$tmp/b/a/different/path"
    cp -R "$ROOT/programs" "$tmp/a/programs"
    cp -R "$ROOT/programs" "$tmp/b/a/different/path/programs"
    build "$tmp/a/programs" "$tmp/out-a" >/dev/null
    build "$tmp/b/a/different/path/programs" "$tmp/out-b" >/dev/null
    status=0
    for o in "$tmp"/out-a/*.bpf.o; do
        name="$(basename "$o")"
        if cmp -s "$o" "$tmp/out-b/$name"; then
            echo "reproducible  $name"
        else
            echo "DIFFERENT     $name" >&2
            status=1
        fi
    done
    exit $status
    ;;
-h | --help)
    sed -n '2,9p' "$0"
    ;;
*)
    build "$ROOT/programs" "${1:-$ROOT/target/bpf}"
    ;;
esac
