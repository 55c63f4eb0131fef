#!/bin/sh
# What libbpf loads on the host kernel (or a cached matrix kernel): the reference for the harness.
#
#   scripts/libbpf-reference.sh [--libbpf tree|system] [--kernel NAME] OBJ_DIR|OBJECT...
#
# Loads every program of every object (*.o in OBJ_DIR, sorted) with libbpf, as root, in a private
# mount namespace with its own bpffs (pinned maps land there, never in /sys/fs/bpf), and prints
# one tab-separated line per program, then a summary:
#
#   object  program  section  loaded|refused  first libbpf warning | last verifier log line
#
# --libbpf tree    (default) libbpf built from the cached linux-source-6.12 of
#                  scripts/selftests-corpus.sh (libbpf 1.5, the one the selftests are written for)
# --libbpf system  the host's libbpf-dev (bookworm: 1.1)
# --kernel NAME    not the host: boot the image cache's kernel whose release starts with NAME.
#                  (6.12, 5.10, ...) under QEMU (TCG) with the loader, linked statically, as /init;
#                  GUEST_MEMORY_MIB (default 1024), GUEST_TIMEOUT_S for the whole guest (3600)
# The loader (scripts/libbpf-ref-loader.c) is built once into $HARNESS_THIRDPARTY (default
# images/thirdparty/). Each object gets at most $LOAD_TIMEOUT_S seconds on the host (default 120),
# 120 in a guest.
set -eu

ROOT="$(cd "$(dirname "$0")/.." && pwd -P)"
CACHE="${HARNESS_THIRDPARTY:-$ROOT/images/thirdparty}"
TIMEOUT="${LOAD_TIMEOUT_S:-120}"
die() { echo "error: $*" >&2; exit 1; }

# Inside the private namespace: mount the bpffs, then load each object in its own process.
if [ "${1:-}" = "--in-namespace" ]; then
    loader="$2"
    pins="$3"
    shift 3
    mount -t bpf bpf "$pins" || die "cannot mount a bpffs on $pins"
    for obj in "$@"; do
        name="$(basename "$obj")"
        out="$(timeout "$TIMEOUT" "$loader" "$pins" "$obj" 2>&1)" && status=0 || status=$?
        if [ "$status" = 0 ]; then
            printf '%s\n' "$out"
        else
            # A crash or a timeout still gives the programs it printed, then says what happened.
            [ -z "$out" ] || printf '%s\n' "$out" | grep -P '\t' || true
            if [ "$status" = 124 ]; then why="timeout after ${TIMEOUT}s"; else why="loader exit $status"; fi
            printf '%s\t-\t-\trefused\t%s\n' "$name" "$why"
        fi
        # Pinned maps of this object must not leak into the next one.
        find "$pins" -mindepth 1 -delete 2>/dev/null || true
    done
    exit 0
fi

LIBBPF=tree
KERNEL=""
while [ $# -gt 0 ]; do
    case "$1" in
    --kernel) [ $# -ge 2 ] || die "--kernel needs a name"; KERNEL="$2"; shift 2 ;;
    --libbpf) [ $# -ge 2 ] || die "--libbpf needs tree or system"; LIBBPF="$2"; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    -*) die "unknown option $1" ;;
    *) break ;;
    esac
done
[ $# -ge 1 ] || die "usage: $0 [--libbpf tree|system] OBJ_DIR|OBJECT..."
[ "$(id -u)" = 0 ] || die "loading BPF programs needs root (CAP_BPF, CAP_SYS_ADMIN for the bpffs)"
command -v unshare >/dev/null 2>&1 || die "unshare (util-linux) is missing"

objects=""
if [ $# = 1 ] && [ -d "$1" ]; then
    objects="$(find "$1" -maxdepth 1 -type f -name '*.o' | LC_ALL=C sort)"
    [ -n "$objects" ] || die "no *.o files in $1"
else
    for f in "$@"; do [ -r "$f" ] || die "cannot read $f"; done
    objects="$*"
fi

CC="${CC:-cc}"
# What building libbpf and the static loader needs: installed here as root (a fresh machine has
# none of the -dev packages), named otherwise.
missing=""
for pkg in make libelf-dev zlib1g-dev; do
    dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
    [ "$(id -u)" = 0 ] || die "missing:$missing (apt-get install$missing)"
    echo "install  $missing" >&2
    apt-get install -y -q --no-install-recommends $missing >/dev/null 2>&1 ||
        { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends $missing >/dev/null; } ||
        die "apt-get install$missing failed"
fi
command -v "$CC" >/dev/null 2>&1 || die "a C compiler is needed for the loader: apt-get install gcc"
case "$LIBBPF" in
tree)
    src="$("$ROOT/scripts/selftests-corpus.sh" --print-src)"
    [ -d "$src/tools/lib/bpf" ] || die "no libbpf source in $src"
    build="$CACHE/libbpf/$(basename "$src")"
    if [ ! -f "$build/.complete" ]; then
        rm -rf "$build.tmp"
        mkdir -p "$build.tmp"
        echo "build     libbpf from $src/tools/lib/bpf" >&2
        make -s -C "$src/tools/lib/bpf" OUTPUT="$build.tmp/" BUILD_STATIC_ONLY=1 \
            DESTDIR="$build.tmp/inst" prefix=/usr install_headers "$build.tmp/libbpf.a" >&2 ||
            die "building libbpf failed (needs make, libelf-dev, zlib1g-dev)"
        touch "$build.tmp/.complete"
        rm -rf "$build"
        mv "$build.tmp" "$build"
    fi
    cflags="-I$build/inst/usr/include"
    libs="$build/libbpf.a -lelf -lz"
    ;;
system)
    [ -f /usr/include/bpf/libbpf.h ] || die "libbpf-dev is missing: apt-get install libbpf-dev"
    build="$CACHE/libbpf/system"
    cflags=""
    libs="-lbpf -lelf -lz"
    ;;
*) die "--libbpf wants tree or system, got '$LIBBPF'" ;;
esac
loader_src="$ROOT/scripts/libbpf-ref-loader.c"
loader="$build/libbpf-ref-loader-$(sha256sum "$loader_src" | cut -c1-12)"
if [ ! -x "$loader" ]; then
    mkdir -p "$build"
    # shellcheck disable=SC2086
    "$CC" -O2 -Wall -Werror $cflags "$loader_src" $libs -o "$loader.tmp" ||
        die "building the loader failed"
    mv -f "$loader.tmp" "$loader"
fi

results="$(mktemp)"
if [ -n "$KERNEL" ] && [ "$KERNEL" != host ]; then
    IMAGES="${HARNESS_IMAGES:-$ROOT/images}"
    kdir=""
    for r in "$IMAGES"/kernels/*/release; do
        [ -f "$r" ] || continue
        # x86_64 guests only (qemu-system-x86_64 below): the cache also holds arm64 kernels of the
        # same releases.
        case "$(cat "$r")" in *-arm64) ;; "$KERNEL".*) kdir="$(dirname "$r")"; break ;; esac
    done
    [ -n "$kdir" ] && [ -f "$kdir/vmlinux" ] ||
        die "no kernel $KERNEL in $IMAGES/kernels (cargo run -p harness -- fetch --kernel $KERNEL)"
    command -v qemu-system-x86_64 >/dev/null 2>&1 || die "qemu-system-x86 is missing"
    if ! command -v cpio >/dev/null 2>&1; then
        echo "install   cpio" >&2
        apt-get install -y -q cpio >&2 || die "apt-get install cpio failed"
    fi
    if [ ! -x "$loader-static" ]; then
        # shellcheck disable=SC2086
        "$CC" -static -O2 -Wall -Werror $cflags "$loader_src" $libs -o "$loader-static.tmp" ||
            die "building the static loader failed"
        mv -f "$loader-static.tmp" "$loader-static"
    fi
    guest="$(mktemp -d)"
    trap 'rm -rf "$guest" "$results"' EXIT
    mkdir -p "$guest/tree/objects" "$guest/tree/proc" "$guest/tree/sys" "$guest/tree/dev"
    cp "$loader-static" "$guest/tree/init"
    # shellcheck disable=SC2086
    cp $objects "$guest/tree/objects/"
    # libbpf reads a kernel's Kconfig (for .kconfig externs) from /boot/config-<release>, as
    # on a real system; the guest has no /boot of its own, so it gets the image's config there.
    if [ -f "$kdir/config" ]; then
        mkdir -p "$guest/tree/boot"
        cp "$kdir/config" "$guest/tree/boot/config-$(cat "$kdir/release")"
    fi
    (cd "$guest/tree" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) >"$guest/initramfs"
    echo "boot      $(cat "$kdir/release") with $(echo "$objects" | wc -w) objects (TCG)" >&2
    # Only the loader's lines: tab-separated rows and its '# ' notes; the console adds \r.
    timeout "${GUEST_TIMEOUT_S:-3600}" qemu-system-x86_64 -machine q35 -accel tcg \
        -m "${GUEST_MEMORY_MIB:-1024}M" -smp 1 -nodefaults -no-user-config -no-reboot \
        -display none -chardev stdio,id=console,signal=off -serial chardev:console \
        -kernel "$kdir/vmlinux" -initrd "$guest/initramfs" \
        -append "console=ttyS0 quiet loglevel=1 panic=-1 no_timer_check tsc=reliable rcupdate.rcu_expedited=1 i8042.noaux i8042.nokbd i8042.nopnp cryptomgr.notests mitigations=off" \
        </dev/null 2>&1 | tr -d '\r' | grep -E '	|^# ' | tee "$results" || true
    grep -q '^# done' "$results" || die "the guest did not finish (see above); GUEST_TIMEOUT_S?"
    where="$(cat "$kdir/release") (guest)"
else
pins="$(mktemp -d)"
trap 'rm -rf "$pins" "$results"' EXIT
# shellcheck disable=SC2086
unshare -m --propagation private sh "$0" --in-namespace "$loader" "$pins" $objects | tee "$results"
where="$(uname -r) (host)"
fi
nobj="$(printf '%s\n' $objects | wc -l | tr -d ' ')"
awk -F '\t' -v nobj="$nobj" -v lib="$LIBBPF" -v kernel="$where" '
    $4 == "loaded" { loaded++; progs++; ok[$1] = 1 }
    $4 == "refused" && $2 != "-" { refused++; progs++; bad[$1] = 1 }
    $4 == "refused" && $2 == "-" { unopened++ }
    END {
        for (o in ok) if (!(o in bad)) all++
        printf "# libbpf (%s) on %s: %d objects, %d programs: %d loaded, %d refused; %d objects fully loaded, %d not opened\n",
            lib, kernel, nobj, progs, loaded, refused, all, unopened
    }' "$results"
