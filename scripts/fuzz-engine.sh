#!/usr/bin/env bash
# Fuzzes the CO-RE relocation engine (harness/core-reloc): runs each
# cargo-fuzz target for N seconds and prints executions and crashes per target.
#
#   scripts/fuzz-engine.sh [SECONDS] [TARGET...]     (default: 60 s, all targets)
#
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# Corpora are seeded with BPF objects compiled from the engine's test fixtures
# and the product's programs, and with their raw .BTF / .BTF.ext sections.
# Crashing inputs land in harness/core-reloc/fuzz/artifacts/TARGET/.
# Exit status: 0 when no target crashed, 1 otherwise, 2 on setup errors.
set -euo pipefail

seconds=${1:-60}
shift || true
root=$(cd "$(dirname "$0")/.." && pwd)
fuzz_dir=$root/harness/core-reloc/fuzz
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(parse_btf parse_btf_ext parse_object relocate)
fi

command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz missing: cargo install cargo-fuzz" >&2; exit 2; }
rustup toolchain list | grep -q nightly || { echo "no nightly toolchain: rustup toolchain install nightly" >&2; exit 2; }

# Seeds: objects from the fixtures and programs, and their BTF sections.
seeds=$fuzz_dir/seeds
if [ ! -d "$seeds" ] && command -v clang-19 >/dev/null; then
    mkdir -p "$seeds/objects" "$seeds/btf" "$seeds/btf_ext"
    fixtures=$root/harness/core-reloc/tests/fixtures
    build() { clang-19 -g -O2 -target bpf -mcpu=v2 -D__TARGET_ARCH_x86 -fno-ident "$@" 2>/dev/null || true; }
    for v in 0 1 2 3; do build -I "$fixtures" -DV=$v -c "$fixtures/differential.c" -o "$seeds/objects/differential-$v.o"; done
    build -I "$fixtures" -c "$fixtures/core_layouts.c" -o "$seeds/objects/core_layouts.o"
    build -I "$fixtures" -c "$fixtures/maps_and_calls.c" -o "$seeds/objects/maps_and_calls.o"
    for src in "$root"/programs/*.bpf.c; do
        build -I "$root/programs/include" -c "$src" -o "$seeds/objects/$(basename "$src" .c).o"
    done
    for o in "$seeds"/objects/*.o; do
        n=$(basename "$o" .o)
        llvm-objcopy-19 --dump-section ".BTF=$seeds/btf/$n" "$o" /dev/null 2>/dev/null || true
        llvm-objcopy-19 --dump-section ".BTF.ext=$seeds/btf_ext/$n" "$o" /dev/null 2>/dev/null || true
    done
    # relocate also takes "len: u32 LE | object | target BTF": one layout against another.
    mkdir -p "$seeds/pairs"
    le32() {
        local n=$1 b
        for b in 0 8 16 24; do printf "\\$(printf '%03o' $(((n >> b) & 255)))"; done
    }
    for v in 0 1; do
        for t in 0 1 2 3; do
            o=$seeds/objects/differential-$v.o
            [ -f "$o" ] && [ -f "$seeds/btf/differential-$t" ] || continue
            { le32 "$(stat -c %s "$o")"; cat "$o" "$seeds/btf/differential-$t"; } >"$seeds/pairs/v$v-t$t"
        done
    done
fi

seed_dir_for() {
    case $1 in
        parse_btf) echo "$seeds/btf" ;;
        parse_btf_ext) echo "$seeds/btf_ext" ;;
        relocate) echo "$seeds/objects $seeds/pairs" ;;
        *) echo "$seeds/objects" ;;
    esac
}

cd "$fuzz_dir"
cargo +nightly fuzz build -O >/dev/null 2>&1 || { echo "cargo fuzz build failed" >&2; exit 2; }
status=0
printf '%-14s %12s %8s %s\n' target executions crashes note
for t in "${targets[@]}"; do
    corpus=$fuzz_dir/corpus/$t
    mkdir -p "$corpus" "$fuzz_dir/artifacts/$t"
    for seed in $(seed_dir_for "$t"); do
        [ -d "$seed" ] && cp -n "$seed"/* "$corpus"/ 2>/dev/null || true
    done
    before=$(find "$fuzz_dir/artifacts/$t" -type f | wc -l)
    log=$fuzz_dir/artifacts/$t.log
    set +e
    # -rss_limit_mb: an input that makes the engine allocate without bound is a crash too.
    cargo +nightly fuzz run -O "$t" "$corpus" -- \
        -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=1024 -malloc_limit_mb=512 \
        >"$log" 2>&1
    rc=$?
    set -e
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    after=$(find "$fuzz_dir/artifacts/$t" -type f | wc -l)
    crashes=$((after - before))
    note=""
    if [ "$rc" -ne 0 ]; then
        status=1
        note="exit $rc, see $log"
        [ "$crashes" -eq 0 ] && crashes=1
    fi
    printf '%-14s %12s %8s %s\n' "$t" "${execs:-?}" "$crashes" "$note"
done
exit $status
