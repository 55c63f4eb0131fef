#!/usr/bin/env bash
# The same kernel booted by virtme-ng 1.42 and by this harness, side by side, in one run.
# virtme-ng boots the compressed vmlinuz with the host's root over 9p and runs `uname -r`;
# the harness boots the PVH vmlinux and runs the whole program corpus. Both under TCG.
#
#   scripts/bench-vng.sh [KERNEL] [RUNS]      (default kernel 6.12, 3 runs)
set -euo pipefail
cd "$(dirname "$0")/.."
kernel=${1:-6.12}
runs=${2:-3}
venv=target/bench-vng-venv
if [ ! -x "$venv/bin/vng" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'virtme-ng==1.42'
fi
command -v busybox >/dev/null || apt-get install -y -q busybox-static >/dev/null
cargo build -q -p harness
bin=target/debug/harness
"$bin" --matrix kernels.toml --kernel "$kernel" -q --color never >/dev/null 2>&1 || true
# virtme-ng wants the compressed image: take it from the cached package.
deb=$(python3 - "$kernel" <<'PY'
import sys, tomllib
lock = tomllib.load(open("kernels.lock", "rb"))
k = next(k for k in lock["kernel"] if k["name"] == sys.argv[1])
print(k["package"][0]["sha256"])
PY
)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dpkg-deb --fsys-tarfile "images/debs/$deb.deb" | tar -x -C "$work" --wildcards '*vmlinuz*'
vmlinuz=$(find "$work" -name 'vmlinuz*' | head -1)

for i in $(seq 1 "$runs"); do
  a=$(date +%s.%N)
  "$venv/bin/vng" --run "$vmlinuz" --disable-kvm --exec 'uname -r' >"$work/vng.log" 2>&1 || { cat "$work/vng.log"; exit 1; }
  b=$(date +%s.%N)
  "$bin" --matrix kernels.toml --kernel "$kernel" -q --color never >"$work/h.log" 2>&1 || { tail -30 "$work/h.log"; exit 1; }
  c=$(date +%s.%N)
  python3 -c "import sys; a,b,c=map(float,sys.argv[1:4]); print(f'run {sys.argv[4]}: virtme-ng {b-a:.2f} s (uname -r: {open(sys.argv[5]).read().strip().splitlines()[-1]}), harness {c-b:.2f} s (whole corpus), ratio vng/harness {(b-a)/(c-b):.2f}')" "$a" "$b" "$c" "$i" "$work/vng.log"
done
