#!/usr/bin/env bash
# The same kernel booted by virtme-ng 1.42 and by this harness, side by side, in one run.
# virtme-ng boots the compressed vmlinuz with the host's root over 9p and runs `uname -r`;
# the harness runs the whole program corpus on the same kernel, the default way (its guest
# restored from the kernel's ready snapshot) and with `--fresh-boot` (PVH boot of the vmlinux).
# All under TCG. Prints each run and the median ratios.
#
#   scripts/bench-vng.sh [KERNEL] [RUNS]      (default kernel 6.12, 3 runs; needs root)
#
# virtme-ng needs the kernel's modules (9p, virtio) on the host: they are unpacked from the
# cached Debian package into /usr/lib/modules/<release> when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
kernel=${1:-6.12}
runs=${2:-3}
venv=target/bench-vng-venv
if [ ! -x "$venv/bin/vng" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'virtme-ng==1.42'
fi
export PATH="$PWD/$venv/bin:$PATH"
command -v busybox >/dev/null || apt-get install -y -q busybox-static >/dev/null
command -v depmod >/dev/null || apt-get install -y -q kmod >/dev/null

cargo build -q -p harness
bin=target/debug/harness
# Warm: the image is cached, objects and agent are built, the ready snapshot exists.
"$bin" --matrix kernels.toml --kernel "$kernel" -q --color never >/dev/null 2>&1 || true

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for deb in $(python3 - "$kernel" <<'PY'
import sys, tomllib
lock = tomllib.load(open("kernels.lock", "rb"))
k = next(k for k in lock["kernel"] if k["name"] == sys.argv[1])
print(" ".join(p["sha256"] for p in k["package"]))
PY
); do
  dpkg-deb --fsys-tarfile "images/debs/$deb.deb" | tar -x -C "$work" --wildcards '*vmlinuz*' '*/modules/*' 2>/dev/null || true
done
vmlinuz=$(find "$work" -name 'vmlinuz*' | head -1)
release=$(basename "$(dirname "$(find "$work" -path '*/modules/*/kernel' -type d | head -1)")")
if [ ! -d "/usr/lib/modules/$release/kernel" ]; then
  echo "unpacking the modules of $release into /usr/lib/modules for virtme-ng"
  mkdir -p /usr/lib/modules
  cp -a "$(find "$work" -path "*/modules/$release" -type d | head -1)" /usr/lib/modules/
  depmod "$release"
fi

harness_run() {  # extra args...: runs the corpus on the kernel, prints its wall seconds
  local a b
  a=$(date +%s.%N)
  "$bin" --matrix kernels.toml --kernel "$kernel" -q --color never "$@" >"$work/h.log" 2>&1 || { tail -30 "$work/h.log" >&2; exit 1; }
  b=$(date +%s.%N)
  grep -q "booting fresh\|did not restore\|building its ready snapshot" "$work/h.log" && [ $# -eq 0 ] && {
    echo "the default run did not restore its guest from a ready snapshot:" >&2; tail -30 "$work/h.log" >&2; exit 1; }
  python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$a" "$b"
}

: >"$work/ratios"
for i in $(seq 1 "$runs"); do
  a=$(date +%s.%N)
  # --verbose: without a terminal, virtme-ng prints the command's output only with the console.
  vng --verbose --run "$vmlinuz" --disable-kvm --exec 'uname -r' >"$work/vng.log" 2>&1 || true
  b=$(date +%s.%N)
  tr -d "\r" <"$work/vng.log" | grep -qx "$release" || { echo "virtme-ng did not print $release:"; tail -20 "$work/vng.log"; exit 1; }
  snap=$(harness_run)
  trials=$(grep -oE '[0-9]+ passed' "$work/h.log" | tail -1)
  fresh=$(harness_run --fresh-boot)
  python3 - "$a" "$b" "$snap" "$fresh" "$i" "$trials" "$work/ratios" <<'PY'
import sys
a, b, snap, fresh = map(float, sys.argv[1:5])
vng = b - a
print(f"run {sys.argv[5]}: virtme-ng {vng:5.2f} s (boot + uname -r); harness {snap:5.2f} s from its "
      f"snapshot, {fresh:5.2f} s booting fresh ({sys.argv[6]} trials); ratio {vng / snap:.1f} / {vng / fresh:.1f}")
open(sys.argv[7], "a").write(f"{vng} {snap} {fresh}\n")
PY
done
python3 - "$work/ratios" <<'PY'
import statistics, sys
rows = [tuple(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
med = lambda xs: statistics.median(xs)
print(f"median of {len(rows)}: virtme-ng {med([r[0] for r in rows]):.2f} s, harness {med([r[1] for r in rows]):.2f} s "
      f"(snapshot) / {med([r[2] for r in rows]):.2f} s (fresh boot); ratio {med([r[0] / r[1] for r in rows]):.1f} "
      f"(snapshot) / {med([r[0] / r[2] for r in rows]):.1f} (fresh boot)")
PY
