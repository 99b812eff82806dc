#!/usr/bin/env bash
# Benchmark: what reading through the sesto agent costs (issue 12). `sesto
# get` with a passphrase-protected key unlocked in the agent (the agent
# unwraps the file keys) against `get` with an unencrypted key file; the
# target is at most 1 ms more. A small store: the cost is per command and
# per node opened, and get opens the root, one folder and the secret.
#
# Run by hand (not in CI): bash bench/agent.sh. See bench/README.md.
#
# Environment:
#   BENCH_RUNS     hyperfine runs per command (default 100)
#   BENCH_RESULTS  where the summary goes (default bench/results-agent.md)
#   BENCH_KEEP     keep the temporary directory
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/lib.sh"
runs_n=${BENCH_RUNS:-100}
results=${BENCH_RESULTS:-$here/results-agent.md}

need_tools cargo hyperfine jq git ssh-keygen
bench_build
bench_workdir sesto-agent
bench_seal_git
export XDG_RUNTIME_DIR=$work/run
mkdir -m 700 "$XDG_RUNTIME_DIR"
unset SESTO_AGENT_SOCK SSH_AUTH_SOCK
stop_agent() { "$sesto" lock >/dev/null 2>&1 || true; }
on_exit+=(stop_agent)

mkdir -p "$store"
cd "$store"
git init -q
ssh-keygen -q -t ed25519 -N "" -C bench -f "$work/plain"
# The same key with a passphrase: the agent's copy stands in for it.
cp "$work/plain" "$work/locked"
ssh-keygen -q -p -P "" -N "bench passphrase" -f "$work/locked"
printf '#!/bin/sh\necho "bench passphrase"\n' >"$work/askpass"
chmod 755 "$work/askpass"
"$sesto" -i "$work/plain" init --name bench >/dev/null 2>&1
printf 'value-%s' x | "$sesto" -i "$work/plain" set prod/db/password
SSH_ASKPASS=$work/askpass SSH_ASKPASS_REQUIRE=force "$sesto" -i "$work/locked" unlock </dev/null >/dev/null
[[ $(setsid -w "$sesto" -i "$work/locked" get prod/db/password </dev/null) == value-x ]] ||
    die "get through the agent did not read the value"

echo "== hyperfine ($runs_n runs each)" >&2
hyperfine -N --warmup 10 --runs "$runs_n" --style basic \
    --export-json "$out/agent.json" --export-markdown "$out/agent.md" \
    -n "get, unencrypted key file" "$sesto -i $work/plain get prod/db/password" \
    -n "get, key unlocked in the agent" "$sesto -i $work/locked get prod/db/password"
load_after=$(uptime)

j=$out/agent.json
p_m=$(mean "$j" "get, unencrypted key file") p_s=$(sd "$j" "get, unencrypted key file")
a_m=$(mean "$j" "get, key unlocked in the agent") a_s=$(sd "$j" "get, key unlocked in the agent")
extra=$(awk -v a="$a_m" -v p="$p_m" 'BEGIN { printf "%.2f", (a - p) * 1000 }')
ok=$(awk -v e="$extra" 'BEGIN { print (e <= 1) }')

{
    echo "# Benchmark results: reading through the sesto agent"
    echo
    echo "Last run of \`bench/agent.sh\` (see README.md beside this file)."
    echo
    header_lines
    echo "- $(hyperfine --version)"
    echo "- Store: one secret, two folders deep (get opens three nodes)"
    echo
    echo "| measure | value | target | result |"
    echo "| --- | --- | --- | --- |"
    echo "| \`get\`, unencrypted key file | $(time_cell "$p_m" "$p_s") | | |"
    echo "| \`get\`, passphrase key unlocked in the agent | $(time_cell "$a_m" "$a_s"): $extra ms more | ≤ 1 ms more | $(verdict "$ok") |"
    echo
    echo "## hyperfine (\`--warmup 10 --runs $runs_n\`)"
    echo
    sed -e "s#$work#\$TMP#g" "$out/agent.md"
} >"$results"
cat "$results"
