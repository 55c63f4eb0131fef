#!/usr/bin/env bash
# Regenerates README's CO-RE coverage tables from the offline relocation report
# (`harness reloc --coverage`: every object relocated against every matrix kernel's BTF).
#
#   scripts/coverage-table.sh          rewrite README.md in place
#   scripts/coverage-table.sh --check  fail if README.md is out of date (CI)
set -euo pipefail
cd "$(dirname "$0")/.."
table=$(mktemp)
trap 'rm -f "$table" "$table.readme"' EXIT
cargo run -q -p harness -- reloc --coverage >"$table"
python3 - "$table" "$table.readme" <<'PY'
import sys
table, out = open(sys.argv[1]).read().rstrip("\n"), sys.argv[2]
readme = open("README.md").read()
start, end = "<!-- coverage:start -->", "<!-- coverage:end -->"
if start not in readme or end not in readme:
    sys.exit("README.md lacks the coverage markers")
head, rest = readme.split(start, 1)
_, tail = rest.split(end, 1)
open(out, "w").write(f"{head}{start}\n{table}\n{end}{tail}")
PY
if [ "${1:-}" = "--check" ]; then
  if ! diff -u README.md "$table.readme"; then
    echo "README.md's coverage tables are out of date: run scripts/coverage-table.sh" >&2
    exit 1
  fi
  echo "README.md coverage tables are up to date"
else
  cp "$table.readme" README.md
fi
