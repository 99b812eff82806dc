#!/usr/bin/env bash
# Benchmark: the worst input at each cap (issue 11). Every row is one input
# at or near its limit, given to the release binary; the table gives the
# median wall time of BENCH_LIMIT_RUNS runs and the largest resident memory
# (GNU time's %M), and whether sesto accepted or refused it. The targets:
# under 0.5 s and under 64 MiB for each; render, exec --env-file and scan
# linear in their input (rows at 100,000 references or lines).
# Run by hand (not in CI): bash bench/limits.sh. See bench/README.md.
#
# Environment:
#   BENCH_LIMIT_RUNS  runs per row (default 5)
#   BENCH_KEEP        keep the temporary directory
#   BENCH_RESULTS     where the table goes (default bench/results-limits.md)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/lib.sh"
runs=${BENCH_LIMIT_RUNS:-5}
results=${BENCH_RESULTS:-$here/results-limits.md}
install_hint="hyperfine age jq time"

need_tools cargo git ssh-keygen age awk python3 jq
[[ -x /usr/bin/time ]] || die "GNU time is missing (apt-get install time)"
bench_build
bench_workdir sesto-limits
bench_seal_git

# A small store: what matters here is the input, not the store's size.
mkdir -p "$store"
cd "$store"
git init -q
ssh-keygen -q -t ed25519 -N "" -C bench -f "$work/id_ed25519"
s=("$sesto" -i "$work/id_ed25519")
"${s[@]}" init --name bench >/dev/null 2>&1
printf 'value-one-%s' x | "${s[@]}" set prod/x
printf 'user: app\npassword: value-two-x\n' | "${s[@]}" set prod/db
"${s[@]}" ls >/dev/null

inputs=$work/inputs
mkdir -p "$inputs"
python3 - "$inputs" <<'PY'
import sys
d = sys.argv[1]
cap = 16 << 20
line = "{{ sesto://prod/x }} {{ sesto://prod/db#password }}\n"
open(f"{d}/render-100k.txt", "w").write(line * 50_000)
open(f"{d}/render-cap.txt", "w").write((line * (cap // len(line)))[:cap - 1] + "\n")
# The env-file caps: 10,000 variables, in at most 1 MiB.
open(f"{d}/env-cap.env", "w").write("".join(f"V{i}=sesto://prod/x\n" for i in range(10_000)))
lit = "".join(f"L{i}=x\n" for i in range(100_000))
open(f"{d}/env-100k-literals.env", "w").write(lit)
open(f"{d}/env-10k-literals.env", "w").write("".join(f"L{i}=x\n" for i in range(10_000)))
scan = "".join(f"line {i}: nothing here, value-one-x once in a while\n" if i % 1000 == 0
               else f"line {i}: nothing here at all\n" for i in range(100_000))
open(f"{d}/scan-100k.txt", "w").write(scan)
open(f"{d}/roster-brackets.yaml", "w").write("sesto: 1\nmembers: " + "[" * ((1 << 20) - 20))
open(f"{d}/node-brackets.txt", "w").write("[" * (16 << 20))
open(f"{d}/template-brackets.txt", "w").write("{{" * (8 << 20))
PY
wc -l "$inputs"/*.txt "$inputs"/*.env | sed 's/^/  /' >&2

# A store copy whose root is 16 MiB of `[` encrypted to the admin (anyone who
# can push can do that), and one whose roster is 1 MiB of `[`.
copy_store() { # NAME -> path of a copy of the store
    local dest=$work/$1
    rm -rf "$dest"
    cp -a "$store" "$dest"
    printf '%s' "$dest"
}
root_id=$(awk '/^root:/ {print $2}' "$store/.sesto/roster.yaml")
deep_root=$(copy_store deep-root)
root_file=$deep_root/.sesto/nodes/${root_id:0:1}/${root_id:1:1}/${root_id:2:1}/${root_id:3:1}/$root_id.age
age -R "$work/id_ed25519.pub" -o "$root_file" "$inputs/node-brackets.txt"
deep_roster=$(copy_store deep-roster)
cp "$inputs/roster-brackets.yaml" "$deep_roster/.sesto/roster.yaml"

table=$work/table.md
printf '| input | exit, and what sesto said | median time | max memory |\n|---|---|---|---|\n' >"$table"
row() { # NAME DIR CMD... -> one table row
    local name=$1 dir=$2
    shift 2
    local times=() mem=0 code=0 i
    for ((i = 0; i < runs; i++)); do
        code=0
        (cd "$dir" && /usr/bin/time -f '%e %M' -o "$work/time" "$@" >"$work/stdout" 2>"$work/stderr") || code=$?
        read -r t m < <(tail -n 1 "$work/time") || true
        m=${m:-0}
        times+=("${t:-nan}")
        ((m > mem)) && mem=$m
    done
    local median
    median=$(printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    # Exit 1 is a refusal, except for scan, where it reports findings.
    local result="exit 0"
    ((code == 0)) || result="exit $code: $(head -c 90 "$work/stderr" | tr '\n|' '  ')"
    printf '| %s | %s | %s s | %.1f MiB |\n' "$name" "$result" "$median" "$(awk -v k="$mem" 'BEGIN {print k / 1024}')" >>"$table"
    echo "  $name: $median s, $mem KiB, exit $code" >&2
}

echo "== $runs runs per row" >&2
row "render, 100,000 references" "$store" "${s[@]}" render "$inputs/render-100k.txt"
row "render, 16 MiB template (the cap, ~630,000 references)" "$store" "${s[@]}" render "$inputs/render-cap.txt"
row "render, 16 MiB of \`{{\`" "$store" "${s[@]}" render "$inputs/template-brackets.txt"
row "exec --env-file, 10,000 references (the variable cap)" "$store" "${s[@]}" exec --env-file "$inputs/env-cap.env" -- true
row "exec --env-file, 10,000 literal lines (the variable cap)" "$store" "${s[@]}" exec --env-file "$inputs/env-10k-literals.env" -- true
row "exec --env-file, 100,000 literal lines (past the 10,000-variable cap)" "$store" "${s[@]}" exec --env-file "$inputs/env-100k-literals.env" -- true
row "scan, a file of 100,000 lines" "$store" "${s[@]}" scan "$inputs/scan-100k.txt"
row "export prod" "$store" "${s[@]}" export prod
row "root node: 16 MiB of \`[\`, unsigned" "$deep_root" "${s[@]}" ls
row "roster: 1 MiB of \`[\`" "$deep_roster" "${s[@]}" ls
row "identity: /dev/zero" "$store" "$sesto" -i /dev/zero ls

{
    echo "# Limits: the worst input at each cap"
    echo
    echo "\`bash bench/limits.sh\` at $rev$dirty on $(nproc) cores, $runs runs per row"
    echo "(release build; GNU time's wall clock and maximum resident set size)."
    echo "Load before: $load_before."
    echo
    cat "$table"
} >"$results"
echo "== results in $results" >&2
cat "$table"
