#!/usr/bin/env bash
# Benchmark: what the node rollback check (src/store/rollback.rs) costs, on a store
# of 10,000 secrets in 50 folders. Two promises are measured:
#
#   - `sesto get` with HEAD where this clone last checked it stays within 10%
#     of `get` built from BENCH_BASE (default a9f68d6, before the check);
#   - the first command after a pull that changed one secret (HEAD moved one
#     commit ahead of the checked one) costs at most 20 ms more than a get.
#
# Run by hand (not in CI): bash bench/rollback.sh. See bench/README.md.
#
# Environment:
#   BENCH_BASE      the revision to compare get with (default a9f68d6)
#   BENCH_RUNS      hyperfine runs per command (default 60)
#   BENCH_RESULTS   where the summary goes (default bench/results-rollback.md)
#   BENCH_FOLDERS, BENCH_SECRETS, BENCH_KEEP as for run.sh
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/lib.sh"
base_rev=${BENCH_BASE:-a9f68d6}
runs_n=${BENCH_RUNS:-60}
results=${BENCH_RESULTS:-$here/results-rollback.md}
get_path=app07/secret-0123
changed=app31/secret-0042

need_tools cargo hyperfine jq git
bench_build

# The baseline: BENCH_BASE built in a worktree of its own, before the sealed
# environment hides the toolchain, into a target directory of its own
# (cargo names a workspace's artifacts by their path inside it, so a shared
# one would have the two builds overwrite each other; the first run builds
# the dependencies there once).
echo "== building $base_rev (release) for the baseline" >&2
base_tmp=$(mktemp -d "${TMPDIR:-/tmp}/sesto-base.XXXXXX")
git -C "$repo" worktree add --quiet --force --detach "$base_tmp/src" "$base_rev"
(cd "$base_tmp/src" && CARGO_TARGET_DIR=$target/bench-base cargo build --release --quiet --bin sesto) ||
    die "building $base_rev failed"
cp "$target/bench-base/release/sesto" "$base_tmp/sesto-base"
git -C "$repo" worktree remove --force "$base_tmp/src"

bench_workdir sesto-rollback
bench_seal_git
mv "$base_tmp/sesto-base" "$work/bin/sesto-base"
rm -rf "$base_tmp"
base=$work/bin/sesto-base

bench_make_store
# Each build keeps its trust pin in a state directory of its own (the
# baseline's pin format is older); both run through env, at equal cost.
cmd=(env "XDG_STATE_HOME=$XDG_STATE_HOME" "$sesto" --store "$store" -i "$store/id_ed25519")
base_cmd=(env "XDG_STATE_HOME=$work/base-state" "$base" --store "$store" -i "$store/id_ed25519")
checked=$store/.git/sesto/checked

echo "== checking that both builds read the store" >&2
[[ $("${cmd[@]}" get "$get_path") == $("${base_cmd[@]}" get "$get_path") ]] ||
    die "$base_rev and this build read $get_path differently"

# A pull of one changed secret: HEAD moves one commit ahead of the commit
# this clone checked. sesto's own commit would mark itself checked, so the
# check file is put back to the older commit before each measured run.
before=$(git -C "$store" rev-parse HEAD)
"${cmd[@]}" set "$changed" <<<"changed-value-$RANDOM" >/dev/null
after=$(git -C "$store" rev-parse HEAD)
[[ $before != "$after" ]] || die "setting $changed made no commit"
n_changed=$(git -C "$store" diff --name-only "$before" "$after" -- .sesto/nodes | wc -l)
echo "$after" >"$checked"
"${cmd[@]}" get "$get_path" >/dev/null

echo "$before" >"$work/checked.before"
echo "== hyperfine ($runs_n runs each)" >&2
# One --prepare per command, in order: only the last one moves the check back.
hyperfine -N --warmup 5 --runs "$runs_n" --style basic \
    --export-json "$out/rollback.json" --export-markdown "$out/rollback.md" \
    --prepare true --prepare true --prepare "cp $work/checked.before $checked" \
    -n "get ($base_rev)" "${base_cmd[*]} get $get_path" \
    -n "get (HEAD checked)" "${cmd[*]} get $get_path" \
    -n "get after a pull of one changed secret" "${cmd[*]} get $get_path"
# The check passed and recorded HEAD (a refusal would have failed the run).
[[ $(cat "$checked") == "$after" ]] || die "the check did not record HEAD as checked"
load_after=$(uptime)

j=$out/rollback.json
b_m=$(mean "$j" "get ($base_rev)") b_s=$(sd "$j" "get ($base_rev)")
g_m=$(mean "$j" "get (HEAD checked)") g_s=$(sd "$j" "get (HEAD checked)")
p_m=$(mean "$j" "get after a pull of one changed secret") p_s=$(sd "$j" "get after a pull of one changed secret")
ok_get=$(awk -v g="$g_m" -v b="$b_m" 'BEGIN { print (g <= 1.10 * b) }')
extra=$(awk -v p="$p_m" -v g="$g_m" 'BEGIN { printf "%.1f", (p - g) * 1000 }')
ok_pull=$(awk -v e="$extra" 'BEGIN { print (e <= 20) }')

{
    echo "# Benchmark results: the node rollback check"
    echo
    echo "Last run of \`bench/rollback.sh\` (see README.md beside this file)."
    echo
    header_lines
    echo "- Baseline: sesto $base_rev, same flags, same store"
    echo "- $(hyperfine --version)"
    echo "- Store: $folders folders × $secrets secrets; the pull changed $n_changed node file(s) ($changed)"
    echo
    echo "| measure | value | target | result |"
    echo "| --- | --- | --- | --- |"
    echo "| \`get\`, HEAD already checked | $(time_cell "$g_m" "$g_s"), $(ratio "$g_m" "$g_s" "$b_m" "$b_s") × $base_rev ($(time_cell "$b_m" "$b_s")) | ≤ 1.10 × | $(verdict "$ok_get") |"
    echo "| first \`get\` after a pull of one changed secret | $(time_cell "$p_m" "$p_s"): $extra ms more than a get | ≤ 20 ms more | $(verdict "$ok_pull") |"
    echo
    echo "## hyperfine (\`--warmup 5 --runs $runs_n\`)"
    echo
    sed -e "s#$work#\$TMP#g" "$out/rollback.md"
} >"$results"
cat "$results"
