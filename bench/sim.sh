#!/usr/bin/env bash
# The team simulation (tests/team_sim.rs) over many seeds: each seed runs in
# both modes (sesto commits; people commit, as in an infrastructure repo), and
# every failure keeps its log, which ends with the steps and the line that
# replays it. Run by hand (not in CI):
#
#   bash bench/sim.sh [SEEDS] [FIRST]      # default 2000 seeds from 1
#
# Environment:
#   SESTO_SIM_STEPS    steps per run (default 30)
#   SESTO_SIM_MODE     commit or infra: one mode only; alternate: one run per
#                      seed, odd seeds commit, even infra (default: both)
#   SESTO_SIM_ATTACKS  mallory's kinds of push to keep (default all:
#                      replay,node,root,roster; none: honest histories,
#                      which must also pass `verify --history`)
#   SIM_OUT            where failure logs go, and done.txt, one line per
#                      finished run (default $TMPDIR/sesto-sim; emptied)
#   SIM_JOBS           runs at a time (default: the number of CPUs)
#   SIM_RELEASE        1: build the test and sesto in release mode (each run
#                      then spends its time in git, not in debug-built crypto)
#   TMPDIR             where each run's repositories go; each run makes and
#                      removes thousands of files, so a tmpfs (TMPDIR=/dev/shm)
#                      helps: on a 2-core machine whose ext4 has no journal,
#                      two jobs ran 31 seeds a minute there against 19.5 in /tmp
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
seeds=${1:-2000}
first=${2:-1}
out=${SIM_OUT:-${TMPDIR:-/tmp}/sesto-sim}
modes=${SESTO_SIM_MODE:-commit infra}
jobs=${SIM_JOBS:-$(nproc)}
export SESTO_SIM_STEPS=${SESTO_SIM_STEPS:-30}

cd "$repo"
# Build once; run the test binary itself for each seed.
profile=()
[[ ${SIM_RELEASE:-} == 1 ]] && profile=(--release)
bin=$(cargo test "${profile[@]}" --test team_sim --no-run 2>&1 |
    sed -n 's/.*Executable tests\/team_sim.rs (\(.*\))$/\1/p' | tail -1)
[ -x "$bin" ] || { echo "sim: cannot find the team_sim test binary" >&2; exit 1; }
rm -rf "$out"
mkdir -p "$out"

start=$(date +%s)
# One run: seed and mode; its log is kept only when it fails.
run_one() {
    local seed=$1 mode=$2 log=$out/seed-$1-$2.log
    if SESTO_SIM_SEED=$seed SESTO_SIM_MODE=$mode "$bin" --exact "sim_${mode}_mode" \
        >"$log" 2>&1; then
        rm -f "$log"
        echo "$seed $mode ok" >>"$out/done.txt"
    else
        echo "seed $seed ($mode): FAILED"
        echo "$seed $mode FAILED" >>"$out/done.txt"
    fi
}
export -f run_one
export bin out
for ((seed = first; seed < first + seeds; seed++)); do
    if [[ $modes == alternate ]]; then
        # One run per seed: odd seeds in commit mode, even ones in infra.
        echo "$seed $( ((seed % 2)) && echo commit || echo infra)"
        continue
    fi
    for mode in $modes; do
        echo "$seed $mode"
    done
done | xargs -P "$jobs" -n 2 bash -c 'run_one "$@"' _
secs=$(( $(date +%s) - start ))

runs=$(( seeds * $( [[ $modes == alternate ]] && echo 1 || wc -w <<<"$modes") ))
failed=0
declare -A why
for log in "$out"/seed-*.log; do
    [ -e "$log" ] || continue
    failed=$((failed + 1))
    # The first line of the failure's message: its kind, for the tally.
    reason=$(grep -m1 -A1 "panicked at" "$log" | tail -1 | cut -c1-100)
    reason=$(sed -E 's/[0-9a-f]{32}/ID/g; s/[0-9a-f]{12}/COMMIT/g; s/step [0-9]+/step N/g; s/v-[a-z]+-[0-9a-z]+/VALUE/g' \
        <<<"$reason")
    why[$reason]=$(( ${why[$reason]:-0} + 1 ))
done

echo
echo "$runs runs ($seeds seeds from $first, $SESTO_SIM_STEPS steps, $jobs at a time), $failed failed, ${secs}s"
if ((failed)); then
    echo "failures by kind:"
    for reason in "${!why[@]}"; do
        printf '%6d  %s\n' "${why[$reason]}" "$reason"
    done | sort -rn
    echo "logs (each ends with its steps and a replay line): $out"
    exit 1
fi
