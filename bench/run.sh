#!/usr/bin/env bash
# Benchmark: sesto get / tree / fsck on a store of 10,000 secrets in 50
# folders, each beside the reference age CLI doing the same decryptions.
# Run by hand (not in CI): bash bench/run.sh. See bench/README.md.
#
# Environment:
#   BENCH_FOLDERS, BENCH_SECRETS  store shape (default 50 × 200)
#   BENCH_GET                     secret to read (default app07/secret-0123)
#   BENCH_FSCK_RUNS               hyperfine runs of the fsck group (default 3)
#   BENCH_EXAMPLE                 cargo example that builds the store (default bench-make-store)
#   BENCH_RESULTS                 where the summary goes (default bench/results.md)
#   BENCH_KEEP=1                  keep the temporary store and keys, and print where
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/lib.sh"
get_path=${BENCH_GET:-app07/secret-0123}
fsck_runs=${BENCH_FSCK_RUNS:-3}
results=${BENCH_RESULTS:-$here/results.md}

need_tools cargo hyperfine age jq git base64 /usr/bin/time
bench_build
bench_workdir sesto-bench
keys=$work/keys
bench_make_store --keys "$keys"

# Node files and the keys that open them, from the list the builder wrote
# (kind, path, key file, node file). The root's key is the SSH key.
tsv=$keys/nodes.tsv
row() { awk -F'\t' -v p="$1" '$2 == p { print $3 " " $4 }' "$tsv"; }
folder=${get_path%/*}
read -r root_key root_file <<<"$(row /)"
read -r folder_key folder_file <<<"$(row "$folder")"
read -r secret_key secret_file <<<"$(row "$get_path")"
[[ -n ${secret_file:-} && -n ${folder_file:-} ]] || die "no secret $get_path in the store"
printf '%s %s\n' "$root_key" "$root_file" "$folder_key" "$folder_file" "$secret_key" "$secret_file" >"$work/chain.list"
awk -F'\t' '$1 == "folder" { print $3 " " $4 }' "$tsv" >"$work/folders.list"
awk -F'\t' '{ print $3 " " $4 }' "$tsv" >"$work/all.list"
n_folders=$(wc -l <"$work/folders.list")
n_all=$(wc -l <"$work/all.list")

sesto_cmd=("$sesto" --store "$store" -i "$store/id_ed25519")
# `xargs -L 1 age -d -o /dev/null -i` runs `age -d -o /dev/null -i KEY FILE`
# once per line: one age process per node file, as a user's loop would.
age_list() { echo "xargs -a $1 -P $2 -L 1 age -d -o /dev/null -i"; }

echo "== checking that sesto and age read the same secret" >&2
from_sesto=$("${sesto_cmd[@]}" get "$get_path" | base64 -w0)
from_age=$(age -d -i "$secret_key" "$secret_file" | awk '$1 == "value:" && $2 == "!!binary" { print $3 }')
[[ $from_sesto == "$from_age" ]] || die "sesto get and age disagree on $get_path"
"${sesto_cmd[@]}" fsck >/dev/null || die "sesto fsck found problems in the new store"

echo "== hyperfine: get and tree" >&2
hyperfine -N --warmup 3 --style basic \
    --export-json "$out/get-tree.json" --export-markdown "$out/get-tree.md" \
    -n "sesto get $get_path" "${sesto_cmd[*]} get $get_path" \
    -n "age -d root node (SSH key)" "age -d -o /dev/null -i $root_key $root_file" \
    -n "age -d secret node (X25519 key)" "age -d -o /dev/null -i $secret_key $secret_file" \
    -n "age -d x3 (root, folder, secret)" "$(age_list "$work/chain.list" 1)" \
    -n "sesto tree" "${sesto_cmd[*]} tree" \
    -n "age -d x$n_folders (every folder node)" "$(age_list "$work/folders.list" 1)"

jobs=$(nproc)
echo "== hyperfine: fsck ($fsck_runs runs; each age loop runs $n_all processes)" >&2
hyperfine -N --warmup 1 --runs "$fsck_runs" --style basic \
    --export-json "$out/fsck.json" --export-markdown "$out/fsck.md" \
    -n "sesto fsck" "${sesto_cmd[*]} fsck" \
    -n "age -d x$n_all, one at a time" "$(age_list "$work/all.list" 1)" \
    -n "age -d x$n_all, $jobs at a time" "$(age_list "$work/all.list" "$jobs")"

echo "== peak memory (/usr/bin/time -v, largest of 3 runs)" >&2
peak_kib() {
    local max=0 kib
    for _ in 1 2 3; do
        /usr/bin/time -v -o "$work/time.txt" "$@" >/dev/null
        kib=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$work/time.txt")
        ((kib > max)) && max=$kib
    done
    echo "$max"
}
rss_get=$(peak_kib "${sesto_cmd[@]}" get "$get_path")
rss_tree=$(peak_kib "${sesto_cmd[@]}" tree)
rss_fsck=$(peak_kib "${sesto_cmd[@]}" fsck)
rss_age=$(peak_kib age -d -o /dev/null -i "$root_key" "$root_file")
load_after=$(uptime)

# ---- summary -------------------------------------------------------------
g=$out/get-tree.json
f=$out/fsck.json
get_m=$(mean "$g" "sesto get $get_path") get_s=$(sd "$g" "sesto get $get_path")
root_m=$(mean "$g" "age -d root node (SSH key)") root_s=$(sd "$g" "age -d root node (SSH key)")
sec_m=$(mean "$g" "age -d secret node (X25519 key)") sec_s=$(sd "$g" "age -d secret node (X25519 key)")
chain_m=$(mean "$g" "age -d x3 (root, folder, secret)") chain_s=$(sd "$g" "age -d x3 (root, folder, secret)")
tree_m=$(mean "$g" "sesto tree") tree_s=$(sd "$g" "sesto tree")
fold_m=$(mean "$g" "age -d x$n_folders (every folder node)") fold_s=$(sd "$g" "age -d x$n_folders (every folder node)")
fsck_m=$(mean "$f" "sesto fsck") fsck_s=$(sd "$f" "sesto fsck")
seq_m=$(mean "$f" "age -d x$n_all, one at a time") seq_s=$(sd "$f" "age -d x$n_all, one at a time")
par_m=$(mean "$f" "age -d x$n_all, $jobs at a time") par_s=$(sd "$f" "age -d x$n_all, $jobs at a time")

mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }
under_mib() { verdict "$(awk -v k="$1" 'BEGIN { print (k < 100 * 1024) }')"; }

ok_get10=$(awk -v m="$get_m" 'BEGIN { print (m < 0.010) }')
ok_get_age=$(awk -v m="$get_m" -v a="$root_m" 'BEGIN { print (m <= a) }')
ok_fsck=$(awk -v m="$fsck_m" 'BEGIN { print (m < 3) }')

{
    echo "# Benchmark results"
    echo
    echo "Last run of \`bench/run.sh\` (see README.md beside this file for what is measured and why)."
    echo
    header_lines
    echo "- $(age --version | sed 's/^/age /'), $(hyperfine --version)"
    echo "- Store: $folders folders × $secrets secrets ($n_all node files), one transaction through the library"
    echo
    echo "## Summary"
    echo
    echo "| command | mean ± σ | median | ratio to the age equivalent (means) | target | result |"
    echo "| --- | --- | --- | --- | --- | --- |"
    echo "| \`sesto get $get_path\` | $(time_cell "$get_m" "$get_s") | $(time_cell "$(median "$g" "sesto get $get_path")") | $(ratio "$get_m" "$get_s" "$root_m" "$root_s") × \`age -d\` of the root node with the SSH key ($(time_cell "$root_m" "$root_s")) | < 10 ms | $(verdict "$ok_get10") |"
    echo "| | | | $(ratio "$get_m" "$get_s" "$sec_m" "$sec_s") × \`age -d\` of the secret node with its X25519 key ($(time_cell "$sec_m" "$sec_s")) | no slower than one \`age -d\` (the root node, SSH key) | $(verdict "$ok_get_age") |"
    echo "| | | | $(ratio "$get_m" "$get_s" "$chain_m" "$chain_s") × age doing get's 3 decryptions, one process each ($(time_cell "$chain_m" "$chain_s")) | | |"
    echo "| \`sesto tree\` | $(time_cell "$tree_m" "$tree_s") | $(time_cell "$(median "$g" "sesto tree")") | $(ratio "$tree_m" "$tree_s" "$fold_m" "$fold_s") × \`age -d\` of the $n_folders folder nodes, one process each ($(time_cell "$fold_m" "$fold_s")) | — | — |"
    echo "| \`sesto fsck\` | $(time_cell "$fsck_m" "$fsck_s") | $(time_cell "$(median "$f" "sesto fsck")") | $(ratio "$fsck_m" "$fsck_s" "$seq_m" "$seq_s") × \`age -d\` of all $n_all nodes one at a time ($(time_cell "$seq_m" "$seq_s")) | < 3 s | $(verdict "$ok_fsck") |"
    echo "| | | | $(ratio "$fsck_m" "$fsck_s" "$par_m" "$par_s") × the same, $jobs at a time ($(time_cell "$par_m" "$par_s")) | | |"
    echo "| peak RSS, \`sesto get\` | $(mib "$rss_get") | | $(awk -v a="$rss_get" -v b="$rss_age" 'BEGIN { printf "%.2f", a / b }') × \`age -d\` of the root node ($(mib "$rss_age")) | < 100 MiB | $(under_mib "$rss_get") |"
    echo "| peak RSS, \`sesto tree\` | $(mib "$rss_tree") | | | < 100 MiB | $(under_mib "$rss_tree") |"
    echo "| peak RSS, \`sesto fsck\` | $(mib "$rss_fsck") | | | < 100 MiB | $(under_mib "$rss_fsck") |"
    echo
    echo "## hyperfine: get and tree (\`--warmup 3\`)"
    echo
    sed -e "s#$work#\$TMP#g" "$out/get-tree.md"
    echo
    echo "## hyperfine: fsck (\`--warmup 1 --runs $fsck_runs\`)"
    echo
    sed -e "s#$work#\$TMP#g" "$out/fsck.md"
    echo
    echo "## Building the store (bench-make-store, stderr)"
    echo
    echo '```'
    cat "$work/make.log"
    echo '```'
} >"$results"
scrub "$out"/get-tree.* "$out"/fsck.*

echo >&2
sed -n '/^## Summary/,/^## hyperfine/p' "$results" | sed '$d' >&2
echo "bench: wrote $results and $out/*.json" >&2
