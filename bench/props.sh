#!/usr/bin/env bash
# The property tests of tests/properties.rs with a larger budget than CI's
# (proptest's default of 256 cases per property). Run by hand:
#
#   bash bench/props.sh [CASES]      # default 100000 cases per property
#
# A failure prints the shrunk input; add it to tests/ as a named test.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$(dirname "$here")"
export PROPTEST_CASES=${1:-100000}
start=$(date +%s)
cargo test --release --test properties -- --test-threads "$(nproc)"
echo "props: $PROPTEST_CASES cases per property in $(($(date +%s) - start)) s" >&2
