#!/usr/bin/env bash
# The same kernel booted by virtme-ng 1.42 and by this harness, side by side, in one run.
# virtme-ng boots the compressed vmlinuz with the host's root over 9p and runs `uname -r`;
# the harness boots the PVH vmlinux and runs the whole program corpus. Both under TCG.
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
# Warm: the image is cached, objects and agent are built.
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

for i in $(seq 1 "$runs"); do
  a=$(date +%s.%N)
  # --verbose: without a terminal, virtme-ng prints the command's output only with the console.
  vng --verbose --run "$vmlinuz" --disable-kvm --exec 'uname -r' >"$work/vng.log" 2>&1 || true
  b=$(date +%s.%N)
  tr -d "\r" <"$work/vng.log" | grep -qx "$release" || { echo "virtme-ng did not print $release:"; tail -20 "$work/vng.log"; exit 1; }
  "$bin" --matrix kernels.toml --kernel "$kernel" -q --color never >"$work/h.log" 2>&1 || { tail -30 "$work/h.log"; exit 1; }
  c=$(date +%s.%N)
  trials=$(grep -oE '^[0-9]+ passed' "$work/h.log" | tail -1)
  python3 -c "import sys; a,b,c=map(float,sys.argv[1:4]); print(f'run {sys.argv[4]}: virtme-ng {b-a:5.2f} s (boot + uname -r), harness {c-b:5.2f} s (boot + {sys.argv[5]} trials), ratio {(b-a)/(c-b):.2f}')" "$a" "$b" "$c" "$i" "$trials"
done
