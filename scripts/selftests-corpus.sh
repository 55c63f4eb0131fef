#!/bin/sh
# Build a third-party corpus: the kernel's BPF selftest programs from Debian's linux-source-6.12,
# compiled the way tools/testing/selftests/bpf/Makefile compiles them, into precompiled objects.
#
#   scripts/selftests-corpus.sh [OUT_DIR] [--max N] [--list FILE] [--jobs N]
#
#   OUT_DIR      where the selected <name>.bpf.o land (default target/selftests-corpus); it must be
#                empty or a directory this script wrote (it then holds exactly the selection)
#   --max N      keep only the first N compiled objects, by name
#   --list FILE  build only the programs FILE names (one name a line, '#' comments), e.g.
#                scripts/selftests-corpus.list; a listed program that does not compile is an error
#   --jobs N     parallel compiles (default 2)
#   --print-src  only download and extract the package, and print where its tree is
#   --btf PATH   the BTF vmlinux.h is generated from (default: the 6.12 kernel of the image cache,
#                fetched with `cargo run -p harness -- fetch --kernel 6.12` when missing)
#
# Everything downloaded or built is cached outside git, in $HARNESS_THIRDPARTY (default
# images/thirdparty/, gitignored): a rerun neither downloads nor compiles again while the package,
# the BTF, the compiler and the flags are unchanged. Pin the package with
# LINUX_SOURCE_VERSION=6.12.117-1~deb12u1 (default: the cached one, else apt's candidate).
#
# Flags, as the Makefile's CLANG_BPF_BUILD_RULE with TRUNNER_BPF_CFLAGS for test_progs:
#   -g -Wall -Werror -D__TARGET_ARCH_x86 -mlittle-endian -I<include> -I<selftests/bpf>
#   -I<tools/include/uapi> -Wno-compare-distinct-pointer-types <-idirafter clang's system dirs>
#   -DENABLE_ATOMICS_TESTS -O2 --target=bpf -mcpu=v3 [per-file extras such as -fno-strict-aliasing]
# plus -fdebug-prefix-map so the objects do not depend on where the cache is (same bytes anywhere).
set -eu

CLANG="${HARNESS_CLANG:-clang-19}"
ROOT="$(cd "$(dirname "$0")/.." && pwd -P)"
CACHE="${HARNESS_THIRDPARTY:-$ROOT/images/thirdparty}"
IMAGES="${HARNESS_IMAGES:-$ROOT/images}"
PKG=linux-source-6.12
# Bumped when the way objects are built changes, so cached objects are rebuilt.
RECIPE=1

die() { echo "error: $*" >&2; exit 1; }

# Per-file extras from the Makefile's progs/<name>.c-CFLAGS lines.
extra_flags() {
    sed -n "s|^progs/$1\\.c-CFLAGS *:= *||p" "$SELFTESTS/Makefile"
}

# compile NAME: leaves NAME.bpf.o, or NAME.failed holding clang's output.
compile_one() {
    name="$1"
    [ -f "$objs/$name.bpf.o" ] || [ -f "$objs/$name.failed" ] && return 0
    # shellcheck disable=SC2086
    if (cd "$SELFTESTS" && "$CLANG" $FLAGS $(extra_flags "$name") -c "progs/$name.c" \
        -o "$objs/.$name.$$.tmp") >"$objs/.$name.$$.log" 2>&1; then
        mv -f "$objs/.$name.$$.tmp" "$objs/$name.bpf.o"
        rm -f "$objs/.$name.$$.log"
    else
        rm -f "$objs/.$name.$$.tmp"
        mv -f "$objs/.$name.$$.log" "$objs/$name.failed"
    fi
}
# Helper mode for the parallel compile below (POSIX sh cannot export functions).
if [ "${1:-}" = "--compile-one" ]; then
    [ $# -eq 2 ] || die "--compile-one NAME"
    compile_one "$2"
    exit 0
fi

OUT=""
MAX=""
LIST=""
JOBS=2
BTF=""
PRINT_SRC=""
while [ $# -gt 0 ]; do
    case "$1" in
    --max) [ $# -ge 2 ] || die "--max needs a number"; MAX="$2"; shift 2 ;;
    --list) [ $# -ge 2 ] || die "--list needs a file"; LIST="$2"; shift 2 ;;
    --jobs) [ $# -ge 2 ] || die "--jobs needs a number"; JOBS="$2"; shift 2 ;;
    --btf) [ $# -ge 2 ] || die "--btf needs a path"; BTF="$2"; shift 2 ;;
    --print-src) PRINT_SRC=1; shift ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    -*) die "unknown option $1" ;;
    *) [ -z "$OUT" ] || die "one OUT_DIR only"; OUT="$1"; shift ;;
    esac
done
OUT="${OUT:-$ROOT/target/selftests-corpus}"
case "$MAX" in ''|*[!0-9]*) [ -z "$MAX" ] || die "--max wants a number, got '$MAX'" ;; esac
case "$JOBS" in ''|*[!0-9]*|0) die "--jobs wants a positive number, got '$JOBS'" ;; esac
[ -z "$LIST" ] || [ -r "$LIST" ] || die "cannot read the list file $LIST"
command -v "$CLANG" >/dev/null 2>&1 || die "BPF compiler '$CLANG' not found: apt-get install clang-19"
command -v python3 >/dev/null 2>&1 || die "python3 is needed for the kernel's scripts/bpf_doc.py"

sha() { sha256sum "$1" | cut -d' ' -f1; }
mkdir -p "$CACHE/debs"

# 1. The package, downloaded once. A machine whose package lists are empty or stale gets them
# refreshed (as root) and one more try.
# apt checks the file against the archive's signed index; it lands by rename, never half-written.
apt_download() {
    part="$CACHE/debs/.partial.$$"
    rm -rf "$part"
    mkdir -p "$part"
    if ! (cd "$part" && apt-get download -q "$1" >&2); then
        [ "$(id -u)" = 0 ] || die "apt-get download $1 failed (as root, apt-get update first)"
        echo "update    apt package lists" >&2
        apt-get update -q >&2 || die "apt-get update failed"
        (cd "$part" && apt-get download -q "$1" >&2) || die "apt-get download $1 failed"
    fi
    for f in "$part"/*.deb; do mv -f "$f" "$CACHE/debs/"; done
    rm -rf "$part"
}
deb=""
if [ -n "${LINUX_SOURCE_VERSION:-}" ]; then
    # apt names the file with the epoch's ':' escaped as %3a; versions here have no epoch.
    deb="$CACHE/debs/${PKG}_${LINUX_SOURCE_VERSION}_all.deb"
    [ -f "$deb" ] || apt_download "$PKG=$LINUX_SOURCE_VERSION"
else
    deb="$(ls "$CACHE/debs/${PKG}"_*_all.deb 2>/dev/null | sort -V | tail -n 1 || true)"
    if [ -z "$deb" ]; then
        apt_download "$PKG"
        deb="$(ls "$CACHE/debs/${PKG}"_*_all.deb | sort -V | tail -n 1)"
    fi
fi
[ -f "$deb" ] || die "no $PKG package at $deb"
deb_sha="$(sha "$deb")"
echo "package   $(basename "$deb") sha256 $deb_sha" >&2

# 2. The parts of the tree the build needs, extracted once per package.
src="$CACHE/src/$(echo "$deb_sha" | cut -c1-16)"
if [ ! -f "$src/.complete" ]; then
    rm -rf "$src.tmp.$$"
    mkdir -p "$src.tmp.$$"
    echo "extract   $PKG into $src" >&2
    dpkg-deb --fsys-tarfile "$deb" | tar -xO "./usr/src/$PKG.tar.xz" |
        tar -xJ -C "$src.tmp.$$" --strip-components=1 \
            "$PKG/tools/testing/selftests/bpf" "$PKG/tools/lib/bpf" "$PKG/tools/include" \
            "$PKG/tools/arch" "$PKG/tools/build" "$PKG/tools/scripts" "$PKG/tools/lib" \
            "$PKG/scripts/bpf_doc.py" "$PKG/include/uapi/linux/bpf.h"
    touch "$src.tmp.$$/.complete"
    rm -rf "$src"
    mv "$src.tmp.$$" "$src"
fi
SELFTESTS="$src/tools/testing/selftests/bpf"
if [ -n "$PRINT_SRC" ]; then
    echo "$src"
    exit 0
fi
LIBBPF="$src/tools/lib/bpf"

# 3. vmlinux.h from the 6.12 kernel's BTF.
if [ -z "$BTF" ]; then
    find_btf() {
        for r in "$IMAGES"/kernels/*/release; do
            [ -f "$r" ] || continue
            # The x86_64 kernel: the cache also holds the arm64 6.12 (the selftests build for x86).
            case "$(cat "$r")" in *-arm64) ;; 6.12.*) echo "$(dirname "$r")/vmlinux.btf"; return ;; esac
        done
    }
    BTF="$(find_btf)"
    if [ -z "$BTF" ]; then
        echo "fetch     the 6.12 kernel into $IMAGES" >&2
        (cd "$ROOT" && cargo run -q -p harness -- fetch --kernel 6.12 --images "$IMAGES" >&2) ||
            die "could not fetch the 6.12 kernel; pass --btf PATH"
        BTF="$(find_btf)"
    fi
    [ -n "$BTF" ] || die "no 6.12 kernel in $IMAGES/kernels; pass --btf PATH"
fi
[ -r "$BTF" ] || die "cannot read BTF $BTF"
BPFTOOL="$(command -v bpftool || true)"
[ -n "$BPFTOOL" ] || BPFTOOL=/usr/sbin/bpftool
if [ ! -x "$BPFTOOL" ]; then
    [ "$(id -u)" = 0 ] || die "bpftool is missing: apt-get install bpftool"
    echo "install   bpftool" >&2
    apt-get install -y -q bpftool >&2 || die "apt-get install bpftool failed"
fi
btf_sha="$(sha "$BTF")"
gen="$CACHE/gen/$(echo "$deb_sha$btf_sha" | sha256sum | cut -c1-16)"
if [ ! -f "$gen/.complete" ]; then
    rm -rf "$gen.tmp.$$"
    mkdir -p "$gen.tmp.$$/bpf"
    echo "generate  vmlinux.h from $BTF, bpf_helper_defs.h from the uapi header" >&2
    "$BPFTOOL" btf dump file "$BTF" format c >"$gen.tmp.$$/vmlinux.h"
    # As tools/lib/bpf/Makefile's BPF_HELPER_DEFS rule, then its install_headers.
    python3 "$src/scripts/bpf_doc.py" --header --file "$src/tools/include/uapi/linux/bpf.h" \
        >"$gen.tmp.$$/bpf/bpf_helper_defs.h"
    for h in bpf.h libbpf.h btf.h libbpf_common.h libbpf_legacy.h bpf_helpers.h bpf_tracing.h \
        bpf_endian.h bpf_core_read.h skel_internal.h libbpf_version.h usdt.bpf.h; do
        cp "$LIBBPF/$h" "$gen.tmp.$$/bpf/$h"
    done
    touch "$gen.tmp.$$/.complete"
    rm -rf "$gen"
    mv "$gen.tmp.$$" "$gen"
fi

# 4. Compile every program, once per (package, BTF, compiler, flags).
sys_includes="$("$CLANG" -v -E - </dev/null 2>&1 |
    sed -n '/<...> search starts here:/,/End of search list./{ s| \(/.*\)|-idirafter \1|p }' | tr '\n' ' ')"
FLAGS="-g -Wall -Werror -D__TARGET_ARCH_x86 -mlittle-endian -I$gen -I$SELFTESTS \
-I$src/tools/include/uapi -Wno-compare-distinct-pointer-types $sys_includes -DENABLE_ATOMICS_TESTS \
-O2 --target=bpf -mcpu=v3 -fdebug-prefix-map=$src=/usr/src/$PKG -fdebug-prefix-map=$gen=/usr/src/$PKG/gen"
key="$(printf '%s\n' "$RECIPE" "$deb_sha" "$btf_sha" "$("$CLANG" --version | head -n 1)" "$FLAGS" |
    sha256sum | cut -c1-16)"
objs="$CACHE/objs/$key"
mkdir -p "$objs"
# This run's lists, private so that two runs with different selections can share the cache.
run="$(mktemp -d)"
trap 'rm -rf "$run"' EXIT

ls "$SELFTESTS/progs" | sed -n 's/\.c$//p' | LC_ALL=C sort >"$run/all"
if [ -n "$LIST" ]; then
    sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' -e 's/\.bpf\.o$//' "$LIST" | LC_ALL=C sort -u >"$run/wanted"
    missing="$(LC_ALL=C comm -23 "$run/wanted" "$run/all")"
    [ -z "$missing" ] || die "the list names programs the selftests do not have: $missing"
else
    cp "$run/all" "$run/wanted"
fi

todo=0
while read -r name; do
    [ -f "$objs/$name.bpf.o" ] || [ -f "$objs/$name.failed" ] || todo=$((todo + 1))
done <"$run/wanted"
if [ "$todo" -gt 0 ]; then
    echo "compile   $todo programs with $CLANG, $JOBS at a time, into $objs" >&2
    export CLANG FLAGS SELFTESTS objs
    xargs -P "$JOBS" -n 1 sh "$0" --compile-one <"$run/wanted" || true
    # Fall back to a serial pass for anything the parallel pass did not settle.
    while read -r name; do compile_one "$name"; done <"$run/wanted"
fi

total="$(wc -l <"$run/wanted" | tr -d ' ')"
: >"$run/compiled"
while read -r name; do
    [ -f "$objs/$name.bpf.o" ] && echo "$name" >>"$run/compiled"
done <"$run/wanted"
compiled="$(wc -l <"$run/compiled" | tr -d ' ')"
if [ -n "$LIST" ] && [ "$compiled" != "$total" ]; then
    while read -r name; do
        [ -f "$objs/$name.failed" ] && { echo "$name:"; head -n 5 "$objs/$name.failed"; } >&2
    done <"$run/wanted"
    die "$((total - compiled)) listed programs do not compile (above)"
fi
if [ -n "$MAX" ]; then
    head -n "$MAX" "$run/compiled" >"$run/selected"
else
    cp "$run/compiled" "$run/selected"
fi

# 5. OUT_DIR holds exactly the selection (only if it is ours: never clear a user's directory).
mkdir -p "$OUT"
marker="$OUT/.selftests-corpus"
if [ ! -f "$marker" ] && [ -n "$(ls -A "$OUT")" ]; then
    die "$OUT is not empty and was not written by this script"
fi
for o in "$OUT"/*.bpf.o; do
    [ -f "$o" ] || continue
    grep -qxF "$(basename "$o" .bpf.o)" "$run/selected" || rm -f "$o"
done
while read -r name; do
    if ! cmp -s "$objs/$name.bpf.o" "$OUT/$name.bpf.o"; then
        cp "$objs/$name.bpf.o" "$OUT/.$name.$$.tmp"
        mv -f "$OUT/.$name.$$.tmp" "$OUT/$name.bpf.o"
    fi
done <"$run/selected"
printf '%s\n' "$PKG $(basename "$deb") $deb_sha" "btf $BTF $btf_sha" "objects $objs" >"$marker"
echo "objects   $(wc -l <"$run/selected" | tr -d ' ') in $OUT" >&2
echo "compiled $compiled of $total"
