#!/usr/bin/env bash
# A kernel built from source, without BTF of its own, running the corpus (issue 15):
#
#  1. Debian's linux-source-6.12, downloaded and extracted once into images/src/ (gitignored),
#     linked as images/src/linux-6.12, the tree of kernels.toml's `6.12-src` entry;
#  2. `harness fetch --kernel 6.12-src`: the harness configures it (tinyconfig, its BPF
#     fragment, scripts/kconfig/no-btf.config which turns CONFIG_DEBUG_INFO_BTF off), builds
#     vmlinux with make -j<cores> and makes its BTF from the DWARF with pahole
#     (`btf_from_dwarf = true`); timed, so a cold run gives the cost of a build on this machine;
#  3. the corpus on `6.12-src`, `6.12-src-vng` (the same build, booted by virtme-ng) and
#     Debian's `6.12` in one run, so `identical::` compares a source-built kernel relocating
#     through BTF made on the host with a distribution kernel, and the two boot backends.
#
#   scripts/source-kernel.sh [--clean] [-- harness run arguments...]
#
#   --clean   remove the build directory first (a full build: minutes on 2 cores)
#
# Not part of the default test run: a first build takes minutes. Exit status: the harness's.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PKG=linux-source-6.12
SRC_CACHE="$ROOT/images/src"
clean=""
while [ $# -gt 0 ]; do
    case "$1" in
    --clean) clean=1; shift ;;
    --) shift; break ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

mkdir -p "$SRC_CACHE/debs"
# 1. The package (apt checks it against the archive's signed index) and its tree, once each; a
# tree already linked (yours, or an earlier run's) is kept, so its build stays warm.
if [ -f "$SRC_CACHE/linux-6.12/Makefile" ]; then
    echo "tree      $(readlink -f "$SRC_CACHE/linux-6.12") (kept)" >&2
else
deb="$(ls "$SRC_CACHE/debs/${PKG}"_*_all.deb 2>/dev/null | sort -V | tail -n 1 || true)"
if [ -z "$deb" ]; then
    part="$SRC_CACHE/debs/.partial.$$"
    rm -rf "$part" && mkdir -p "$part"
    if ! (cd "$part" && apt-get download -q "$PKG" >&2); then
        [ "$(id -u)" = 0 ] || { echo "error: apt-get download $PKG failed (as root, apt-get update first)" >&2; exit 1; }
        apt-get update -q >&2
        (cd "$part" && apt-get download -q "$PKG" >&2)
    fi
    mv -f "$part"/*.deb "$SRC_CACHE/debs/" && rm -rf "$part"
    deb="$(ls "$SRC_CACHE/debs/${PKG}"_*_all.deb | sort -V | tail -n 1)"
fi
sha="$(sha256sum "$deb" | cut -c1-16)"
tree="$SRC_CACHE/$sha"
if [ ! -f "$tree/.complete" ]; then
    echo "extract   $(basename "$deb") into $tree" >&2
    rm -rf "$tree.tmp.$$" && mkdir -p "$tree.tmp.$$"
    dpkg-deb --fsys-tarfile "$deb" | tar -xO "./usr/src/$PKG.tar.xz" |
        tar -xJ -C "$tree.tmp.$$" --strip-components=1
    touch "$tree.tmp.$$/.complete"
    rm -rf "$tree" && mv "$tree.tmp.$$" "$tree"
fi
ln -sfn "$sha" "$SRC_CACHE/linux-6.12"
fi

cargo build -q --release -p harness
harness="$ROOT/target/release/harness"
build_dir="$ROOT/images/builds"
# The harness names a build directory after its tree (and a digest of the tree's path and
# fragments): the one of `6.12-src` and `6.12-src-vng`, which share it.
tree_name="$(basename "$(readlink -f "$SRC_CACHE/linux-6.12")")"
if [ -n "$clean" ]; then
    rm -rf "$build_dir/$tree_name"-*
fi

# 2. Build (when needed) and make the BTF, timed.
mkdir -p target/source-kernel
start=$(date +%s.%N)
"$harness" fetch --matrix kernels.toml --kernel 6.12-src --kernel 6.12-src-vng | tee target/source-kernel/fetched
end=$(date +%s.%N)
vmlinux="$(awk '$1 == "6.12-src" { print $3 }' target/source-kernel/fetched)"
echo "build     $(python3 -c "print(f'{$end - $start:.0f}')") s (configure, make -j$(nproc) vmlinux, pahole) on $(nproc) cores"
echo "vmlinux   $vmlinux: $(du -m "$vmlinux" | cut -f1) MB, .BTF section: $(readelf -S "$vmlinux" | grep -q '\.BTF' && echo present || echo absent)"

# 3. The corpus on the three kernels, one run: the source-built one booted by the harness's QEMU
# command and by virtme-ng, and Debian's.
set +e
"$harness" --matrix kernels.toml --kernel 6.12 --kernel 6.12-src --kernel 6.12-src-vng \
    --report-json target/source-kernel/report.json "$@"
status=$?
set -e
python3 - target/source-kernel/report.json <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
c = report["counts"]
print(f"trials    {c['passed']} passed, {c['failed']} failed, {c['unsupported']} unsupported, "
      f"{c['input_refused']} input refused")
ident = [t for t in report["trials"] if t["name"].startswith("identical::")]
passed = sum(t["outcome"]["status"] == "passed" for t in ident)
print(f"identical {passed} of {len(ident)} passed")
for t in ident:
    if t["outcome"]["status"] == "failed":
        print(f"  FAILED {t['name']}: {t['outcome']['detail'][:300]}")
for k in report["kernels"]:
    kc = k["counts"]
    print(f"kernel    {k['name']}: {k['release']}, {k['outcome']}, booted by {k.get('backend')}, "
          f"hello {k.get('boot_ms')} ms, results {k.get('results_ms')} ms, exit {k.get('total_ms')} ms, "
          f"BTF {json.dumps(k.get('btf'))}, "
          f"{kc['passed']} passed, {kc['failed']} failed, {kc['unsupported']} unsupported")
    unsupported = [t for t in report["trials"] if t.get("kernel") == k["name"]
                   and t["outcome"]["status"] == "unsupported"]
    for t in unsupported[:10]:
        print(f"  unsupported {t['name']}: {t['outcome']['detail'][:160]}")
PY
exit $status
