#!/usr/bin/env bash
# Benchmark: sesto at deploy and commit time.
#   1. `sesto exec FOLDER -- true` over a folder of 500 secrets, end to end
#      (process start, roster and trust, the path, 500 nodes decrypted and
#      verified, the command started), beside `sesto get` of one secret and
#      `sesto export` of the same folder; target < 150 ms;
#   2. `sesto scan --staged` over a 10 MB staged change in a store whose
#      admin reads 1,000 values (every value searched for, plus the token
#      patterns); target < 1 s.
# Run by hand (not in CI): bash bench/automation.sh. See bench/README.md.
#
# Environment:
#   BENCH_EXEC_RUNS   runs of each exec measurement (default 30)
#   BENCH_SCAN_RUNS   runs of the scan measurement (default 10)
#   BENCH_SCAN_MB     size of the staged change in MB (default 10)
#   BENCH_EXAMPLE, BENCH_KEEP  as for run.sh
#   BENCH_RESULTS     where the summary goes (default bench/results-automation.md)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/lib.sh"
exec_runs=${BENCH_EXEC_RUNS:-30}
scan_runs=${BENCH_SCAN_RUNS:-10}
scan_mb=${BENCH_SCAN_MB:-10}
results=${BENCH_RESULTS:-$here/results-automation.md}

need_tools cargo hyperfine jq git ssh-keygen awk
bench_build
bench_workdir sesto-automation
bench_seal_git

hf() { # NAME RUNS hyperfine-args... -> $out/automation-NAME.{json,md}
    local name=$1 runs=$2
    shift 2
    hyperfine --runs "$runs" --warmup 3 --style basic -N \
        --export-json "$out/automation-$name.json" --export-markdown "$out/automation-$name.md" "$@"
}

# ---- 1. exec over a folder of 500 secrets -----------------------------------
# 20 folders of 500 (10,000 secrets, as in the other benchmarks' store).
folders=20 secrets=500
bench_make_store
key=$store/id_ed25519
printf '/id_ed25519\n/id_ed25519.pub\n' >>"$store/.git/info/exclude"
sesto_cmd=("$sesto" --store "$store" -i "$key")
"${sesto_cmd[@]}" trust --accept >/dev/null
n_vars=$("${sesto_cmd[@]}" exec app07 -- env | grep -c '^SECRET_') ||
    die "sesto exec app07 -- env failed"
[[ $n_vars == 500 ]] || die "sesto exec gave $n_vars SECRET_ variables, not 500"

exec_name="sesto exec app07 -- true (500 secrets)"
export_name="sesto export app07 (500 secrets)"
get_name="sesto get app07/secret-0123 (1 secret)"
echo "== hyperfine: $exec_name ($exec_runs runs)" >&2
hf exec "$exec_runs" \
    -n "$exec_name" "${sesto_cmd[*]} exec app07 -- true" \
    -n "$export_name" "${sesto_cmd[*]} export app07 -o $work/app07.env" \
    -n "$get_name" "${sesto_cmd[*]} get app07/secret-0123"

# ---- 2. scan --staged: 10 MB, 1,000 known values -----------------------------
scan_store=$work/scan-store
echo "== building the scan store: 2 folders × 500 secrets" >&2
"$make_store" "$scan_store" --folders 2 --secrets 500 2>"$work/make-scan.log" ||
    { cat "$work/make-scan.log" >&2; die "building the scan store failed"; }
scan_key=$scan_store/id_ed25519
printf '/id_ed25519\n/id_ed25519.pub\n' >>"$scan_store/.git/info/exclude"
scan_cmd=("$sesto" --store "$scan_store" -i "$scan_key")
"${scan_cmd[@]}" trust --accept >/dev/null
# Ordinary configuration: 100 files of 100 KB of INI, YAML and env lines, with
# hashes, URLs and ids that are no secrets.
echo "== writing and staging the ${scan_mb} MB change" >&2
mkdir -p "$scan_store/config"
awk -v dir="$scan_store/config" -v mb="$scan_mb" 'BEGIN {
    srand(7); files = mb * 10
    for (f = 0; f < files; f++) {
        path = sprintf("%s/service-%03d.conf", dir, f); bytes = 0; n = 0
        while (bytes < 100000) {
            n++
            if (n % 4 == 0) line = sprintf("checksum_%d = sha256:%08x%08x%08x%08x", n, rand()*2^32, rand()*2^32, rand()*2^32, rand()*2^32)
            else if (n % 4 == 1) line = sprintf("upstream_%d: https://svc-%d.internal.example:%d/api/v%d", n, n % 97, 8000 + n % 1000, n % 3 + 1)
            else if (n % 4 == 2) line = sprintf("WORKERS_%d=%d  # threads for queue %d", n, n % 64, n % 13)
            else line = sprintf("[section.%d] timeout = %dms retries = %d", n, n % 5000, n % 7)
            print line > path; bytes += length(line) + 1
        }
        close(path)
    }
}'
git -C "$scan_store" add config
staged_bytes=$(git -C "$scan_store" diff --cached --numstat | awk '{ n += $1 } END { print n }')
staged_size=$(du -sb "$scan_store/config" | awk '{ print $1 }')
known=$("${scan_cmd[@]}" find '*' | grep -vc '/$')
[[ $known -ge 1000 ]] || die "the scan store has $known secrets, not 1,000"
"${scan_cmd[@]}" scan --staged >"$work/scan-clean.out" 2>&1 ||
    { cat "$work/scan-clean.out" >&2; die "sesto scan --staged finds something in the clean change"; }

scan_name="sesto scan --staged (${scan_mb} MB, $known known values)"
echo "== hyperfine: $scan_name ($scan_runs runs)" >&2
hf scan "$scan_runs" -n "$scan_name" "${scan_cmd[*]} scan --staged"

# The timed scan looked for real: a value pasted into the change is found.
planted=$("${scan_cmd[@]}" get app01/secret-0321)
printf 'password = %s\n' "$planted" >>"$scan_store/config/service-050.conf"
git -C "$scan_store" add config
if "${scan_cmd[@]}" scan --staged >"$work/scan-planted.out" 2>&1; then
    die "sesto scan --staged missed a value pasted into config/service-050.conf"
fi
grep -q 'service-050.conf' "$work/scan-planted.out" ||
    die "the finding does not name config/service-050.conf: $(cat "$work/scan-planted.out")"
! grep -qF -- "$planted" "$work/scan-planted.out" || die "sesto scan printed the value it found"
load_after=$(uptime)

# ---- summary -----------------------------------------------------------------
ej=$out/automation-exec.json sj=$out/automation-scan.json
exec_mean=$(mean "$ej" "$exec_name") exec_sd=$(sd "$ej" "$exec_name")
scan_mean=$(mean "$sj" "$scan_name") scan_sd=$(sd "$sj" "$scan_name")
{
    echo "# sesto at deploy and commit time"
    echo
    header_lines
    echo "- exec store: 20 folders × 500 secrets (10,020 node files); scan store: 2 × 500"
    echo "- Staged change: $(awk -v b="$staged_size" 'BEGIN { printf "%.1f MB", b / 1e6 }') in 100 files, $staged_bytes lines"
    echo
    echo "| measurement | mean ± σ | median | runs | target | verdict |"
    echo "| --- | --- | --- | --- | --- | --- |"
    for n in "$exec_name" "$export_name" "$get_name"; do
        target="" v=""
        if [[ $n == "$exec_name" ]]; then
            target="< 150 ms"
            v=$(verdict "$(awk -v m="$exec_mean" 'BEGIN { print (m < 0.150) }')")
        fi
        echo "| $n | $(time_cell "$(mean "$ej" "$n")" "$(sd "$ej" "$n")") | $(time_cell "$(median "$ej" "$n")") | $(runs "$ej" "$n") | $target | $v |"
    done
    echo "| $scan_name | $(time_cell "$scan_mean" "$scan_sd") | $(time_cell "$(median "$sj" "$scan_name")") | $(runs "$sj" "$scan_name") | < 1 s | $(verdict "$(awk -v m="$scan_mean" 'BEGIN { print (m < 1) }')") |"
    echo
    echo "Checks made by the script: exec gave the child 500 variables; the clean"
    echo "change scans clean; a value pasted into it is found, named by file, and"
    echo "not printed."
} >"$results"
scrub "$out"/automation-*.json "$out"/automation-*.md
cat "$results"
