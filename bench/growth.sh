#!/usr/bin/env bash
# Benchmark (issue 14, "a repository that stays small"): how much git grows
# with sesto's format today, beside pass and a passage-style store (one age
# file per secret) measured in the same run, and what reads cost in a store
# with one large folder:
#   1. .git after `git gc --aggressive --prune=now` for 1,000 secrets added
#      one insert per commit, as each tool does by default, in 20 folders of
#      50 and in 10 folders of 100 (and the loose objects before gc);
#   2. the git objects one new secret adds to a folder of 10,000 secrets in a
#      store of 100,000, and the largest tree that change rewrites (with the
#      size it would have at 1,000,000 nodes, extrapolated);
#   3. `sesto get` of a secret in that folder, `sesto tree` of the whole
#      store, `sesto member remove` of a member who could read that folder;
#      and beside the reference tools in the same run: `sesto get` of a
#      secret in an ordinary folder against one `age -d`, warm and with the
#      page cache dropped before each run (root only), and `sesto tree`
#      against `find` listing the same number of files (the node files).
# Each row prints pass or FAIL against the issue's target. Today's format is
# expected to miss several: the point is a baseline for the next one.
# Run by hand (not in CI): bash bench/growth.sh. See bench/README.md.
#
# Environment:
#   BENCH_INSERTS          secrets added one commit each in row 1 (default 1000)
#   BENCH_LAYOUTS          folder counts for row 1, the first is judged (default "20 10")
#   BENCH_FOLDERS, BENCH_SECRETS  the ordinary folders of the large store
#                          (default 90 × 1000)
#   BENCH_BIG              secrets in its large folder `big` (default 10000)
#   BENCH_PEER_REST        files in each ordinary folder of the peers' large
#                          stores (default 1; see README.md for why that is fair)
#   BENCH_GET_RUNS         runs of each get (default 20)
#   BENCH_TREE_RUNS        runs of sesto tree and of find (default 5)
#   BENCH_COLD_RUNS        runs of each cold read (default 10; 0 skips them)
#   BENCH_REMOVE_RUNS      runs of sesto member remove (default 1)
#   BENCH_PASSAGE_RUNS     runs of the passage-style re-encryption of big/ (default 1)
#   BENCH_PASS_REMOVE      1: also time `pass init -p big ADMIN` (about 5 minutes)
#   BENCH_JOBS             processes at once building the peers' stores (default nproc)
#   BENCH_EXAMPLE, BENCH_KEEP  as for run.sh
#   BENCH_RESULTS          where the summary goes (default bench/results-growth.md)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_FOLDERS=${BENCH_FOLDERS:-90} BENCH_SECRETS=${BENCH_SECRETS:-1000}
source "$here/lib.sh"
inserts=${BENCH_INSERTS:-1000}
read -ra layouts <<<"${BENCH_LAYOUTS:-20 10}"
big=${BENCH_BIG:-10000}
peer_rest=${BENCH_PEER_REST:-1}
get_runs=${BENCH_GET_RUNS:-20}
tree_runs=${BENCH_TREE_RUNS:-5}
remove_runs=${BENCH_REMOVE_RUNS:-1}
passage_runs=${BENCH_PASSAGE_RUNS:-1}
pass_remove=${BENCH_PASS_REMOVE:-0}
jobs=${BENCH_JOBS:-$(nproc)}
results=${BENCH_RESULTS:-$here/results-growth.md}
get_path=big/secret-0123
cold_runs=${BENCH_COLD_RUNS:-10}
new_path=big/secret-$big
umask 077

install_hint="pass gnupg hyperfine age jq openssh-client"
need_tools cargo hyperfine age age-keygen jq git gpg gpgconf pass ssh-keygen xargs awk
((big >= 124)) || die "BENCH_BIG must be at least 124 ($get_path is read)"
bench_build
bench_workdir sesto-growth
bench_seal_git
bench_seal_gpg
# git runs sesto's merge driver by the path setup-git records; on PATH as well.
export PATH=$work/bin:$PATH

# ---- keys --------------------------------------------------------------------
echo "== keys: ssh-ed25519 (sesto), gpg ed25519/cv25519 (pass), age X25519 (passage)" >&2
keys=$work/keys
mkdir -m 700 "$keys"
for who in admin bob; do
    ssh-keygen -q -t ed25519 -N '' -C "$who" -f "$keys/${who}_ed25519"
    age-keygen -o "$keys/$who.age" 2>/dev/null
    age-keygen -y "$keys/$who.age" >"$keys/$who.rcpt"
done
gpg_admin=$(gpg_new_key admin)
gpg_bob=$(gpg_new_key bob)

# values FILE N SEED — N values of 20-60 characters (letters, digits and a few
# symbols), one a line, from awk's seeded generator: the same for every tool.
values() {
    awk -v n="$2" -v seed="$3" 'BEGIN {
        srand(seed); a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#%+-.:=@^_~"
        for (i = 0; i < n; i++) {
            len = 20 + int(rand() * 41); s = ""
            for (j = 0; j < len; j++) s = s substr(a, 1 + int(rand() * length(a)), 1)
            print s
        } }' >"$1"
}
# split_values LIST DIR — value i of LIST as the file DIR/i (no newline).
split_values() {
    mkdir -p "$2"
    awk -v d="$2" '{ f = d "/" (NR - 1); printf "%s", $0 > f; close(f) }' "$1"
}
now() { date +%s.%N; }
dsum() { awk '{ t += $1 } END { print t + 0 }'; }
loose_bytes() { find "$1/.git/objects" -path '*/objects/[0-9a-f][0-9a-f]/*' -type f -printf '%s\n' | dsum; }
pack_bytes() { find "$1/.git/objects/pack" -name '*.pack' -printf '%s\n' | dsum; }
count_field() { git -C "$1" count-objects -v | awk -v k="$2:" '$1 == k { print $2 }'; }

# ---- row 1: 1,000 inserts, one commit each -------------------------------------
values "$work/values-r1.txt" "$inserts" 14
split_values "$work/values-r1.txt" "$work/v1"

# insert_run FOLDERS — three repositories in $work/r1-FOLDERS/, the same
# $inserts values at the same paths app00/secret-0000… (FOLDERS folders,
# filled one after the other), each value added by its own process and
# committed, then measured before and after gc. Appends a line to
# $work/row1.tsv: folders tool commits loose_count loose_bytes git_before
# git_after pack_after seconds.
insert_run() {
    local nf=$1 per=$(((inserts + $1 - 1) / $1)) dir=$work/r1-$1 i p t0 tool
    mkdir -p "$dir"
    local paths=$dir/paths
    for ((i = 0; i < inserts; i++)); do
        printf 'app%02d/secret-%04d\n' $((i / per)) $((i % per))
    done >"$paths"

    echo "== row 1, $nf folders of $per: sesto set × $inserts" >&2
    local s=$dir/sesto
    mkdir "$s"
    git -C "$s" init -q -b main
    (cd "$s" && "$sesto" -i "$keys/admin_ed25519" init --name admin >/dev/null)
    [[ $(git -C "$s" config --bool sesto.commit) == true ]] || die "sesto init did not turn on sesto.commit in an empty repository"
    t0=$(now)
    i=0
    while read -r p; do
        "$sesto" --store "$s" -i "$keys/admin_ed25519" set --file "$work/v1/$i" "$p" >/dev/null
        i=$((i + 1))
    done <"$paths"
    measure_r1 "$nf" sesto "$s" "$t0"

    echo "== row 1, $nf folders of $per: pass insert -m × $inserts" >&2
    local ps=$dir/pass
    PASSWORD_STORE_DIR=$ps pass init "$gpg_admin" >/dev/null
    PASSWORD_STORE_DIR=$ps GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=init.defaultBranch GIT_CONFIG_VALUE_0=main \
        pass git init >/dev/null
    t0=$(now)
    i=0
    while read -r p; do
        PASSWORD_STORE_DIR=$ps pass insert -m "$p" <"$work/v1/$i" >/dev/null
        i=$((i + 1))
    done <"$paths"
    measure_r1 "$nf" pass "$ps" "$t0"

    echo "== row 1, $nf folders of $per: age -e + git add + git commit × $inserts" >&2
    local ag=$dir/passage
    mkdir "$ag"
    git -C "$ag" init -q -b main
    cp "$keys/admin.rcpt" "$ag/.age-recipients"
    git -C "$ag" add .age-recipients
    git -C "$ag" commit -q -m "Set age recipients"
    t0=$(now)
    i=0
    while read -r p; do
        mkdir -p "$ag/${p%/*}"
        age -e -R "$ag/.age-recipients" -o "$ag/$p.age" "$work/v1/$i"
        git -C "$ag" add "$p.age"
        git -C "$ag" commit -q -m "Add given password for $p to store."
        i=$((i + 1))
    done <"$paths"
    measure_r1 "$nf" passage "$ag" "$t0"
}
measure_r1() { # FOLDERS TOOL REPO T0
    local secs
    secs=$(awk -v a="$4" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
    [[ -z $(git -C "$3" status --porcelain) ]] || die "$2 left changes uncommitted in $3"
    local commits loose lbytes before
    commits=$(git -C "$3" rev-list --count HEAD)
    loose=$(count_field "$3" count)
    lbytes=$(loose_bytes "$3")
    # Nothing here runs gc by itself (sesto runs git plumbing; 1,000 commits
    # leave git commit's `gc --auto` below its 6,700 loose objects), so the
    # loose objects are all of it; say so if that ever stops being true.
    [[ $(count_field "$3" packs) == 0 ]] || echo "bench: warning: $2 has packs before gc; loose counts miss them" >&2
    before=$(du -sb "$3/.git" | cut -f1)
    git -C "$3" gc --quiet --aggressive --prune=now
    [[ $(count_field "$3" count) == 0 ]] || die "$2: loose objects left after gc"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$commits" "$loose" "$lbytes" "$before" \
        "$(du -sb "$3/.git" | cut -f1)" "$(pack_bytes "$3")" "$secs" >>"$work/row1.tsv"
    echo "   $secs s, $commits commits, $loose loose objects ($lbytes bytes); .git $before → $(du -sb "$3/.git" | cut -f1) bytes after gc" >&2
}
: >"$work/row1.tsv"
for nf in "${layouts[@]}"; do insert_run "$nf"; done
# Spot checks: each tool reads back the last value it was given.
last=$((inserts - 1))
last_path=$(tail -1 "$work/r1-${layouts[0]}/paths")
[[ $("$sesto" --store "$work/r1-${layouts[0]}/sesto" -i "$keys/admin_ed25519" get "$last_path") == "$(cat "$work/v1/$last")" ]] ||
    die "sesto get $last_path differs from the value set"
[[ $(PASSWORD_STORE_DIR=$work/r1-${layouts[0]}/pass pass show "$last_path") == "$(cat "$work/v1/$last")" ]] ||
    die "pass show $last_path differs from the value inserted"
[[ $(age -d -i "$keys/admin.age" "$work/r1-${layouts[0]}/passage/$last_path.age") == "$(cat "$work/v1/$last")" ]] ||
    die "age -d of $last_path.age differs from the value encrypted"

# ---- the large stores ------------------------------------------------------------
# The row 1 stores have their own pins: the large store's is the one that is new.
pins_before=$(ls "$XDG_STATE_HOME"/sesto/trust/ 2>/dev/null || true)
t0=$SECONDS
bench_make_store --big "$big"
store_build=$((SECONDS - t0))
admin_key=$store/id_ed25519
printf '/id_ed25519\n/id_ed25519.pub\n' >>"$store/.git/info/exclude"
"$sesto" --store "$store" setup-git >/dev/null
sesto_cmd=("$sesto" --store "$store" -i "$admin_key")
"${sesto_cmd[@]}" trust --accept >/dev/null
pin_file=$XDG_STATE_HOME/sesto/trust/$(ls "$XDG_STATE_HOME"/sesto/trust/ | grep -vxF "$pins_before" || true)
[[ -f $pin_file ]] || die "sesto trust --accept wrote no pin under $XDG_STATE_HOME/sesto/trust"
echo "== bob joins and is granted big/ (he will be removed in row 3)" >&2
"${sesto_cmd[@]}" member add bob --key-file "$keys/bob_ed25519.pub" >/dev/null
"${sesto_cmd[@]}" grant bob big >/dev/null

echo "== the peers' large stores: big/ of $big files (admin and bob), $folders other folders of $peer_rest" >&2
t0=$SECONDS
plain=$work/plain
mkdir -m 700 "$plain"
values "$work/values-big.txt" "$big" 15
split_values "$work/values-big.txt" "$plain/big"
(cd "$plain/big" && for ((i = 0; i < big; i++)); do mv "$i" "$(printf 'secret-%04d' "$i")"; done)
values "$work/values-rest.txt" $((folders * peer_rest)) 16
split_values "$work/values-rest.txt" "$plain/rest"
for ((f = 0; f < folders; f++)); do
    mkdir "$plain/$(printf 'app%02d' "$f")"
    for ((s = 0; s < peer_rest; s++)); do
        mv "$plain/rest/$((f * peer_rest + s))" "$plain/$(printf 'app%02d/secret-%04d' "$f" "$s")"
    done
done
rmdir "$plain/rest"
(cd "$plain" && find . -type f -printf '%P\n' | sort) >"$work/peer-secrets.list"

# pass: .gpg-id at the root (admin) and in big/ (admin and bob), the files
# encrypted with pass's own gpg options, in a repository made by `pass git init`.
PASSWORD_STORE_DIR=$work/pass-big
export PASSWORD_STORE_DIR
pass init "$gpg_admin" >/dev/null
pass init -p big "$gpg_admin" "$gpg_bob" >/dev/null
GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=init.defaultBranch GIT_CONFIG_VALUE_0=main pass git init >/dev/null
gpg_enc() { # RECIPIENT-ARGS... -- reads NUL-separated files on stdin
    xargs -0 -P "$jobs" -n 500 gpg --batch --quiet --yes --compress-algo=none --no-encrypt-to "$@" --encrypt-files
}
(cd "$plain" && find big -type f -print0 | gpg_enc -r "$gpg_admin" -r "$gpg_bob")
(cd "$plain" && find . -path ./big -prune -o -type f -print0 | gpg_enc -r "$gpg_admin")
(cd "$plain" && find . -name '*.gpg' -printf '%P\0' | xargs -0 cp --parents -t "$PASSWORD_STORE_DIR")
git -C "$PASSWORD_STORE_DIR" add -A
git -C "$PASSWORD_STORE_DIR" -c gc.auto=0 commit -q -m "The benchmark's secrets"
git -C "$PASSWORD_STORE_DIR" gc --quiet
find "$plain" -name '*.gpg' -delete

# passage-style: .age-recipients at the root (admin) and in big/ (admin and bob).
passage=$work/passage-big
mkdir "$passage"
git -C "$passage" init -q -b main
cp "$keys/admin.rcpt" "$passage/.age-recipients"
mkdir "$passage/big"
cat "$keys/admin.rcpt" "$keys/bob.rcpt" >"$passage/big/.age-recipients"
(cd "$plain" && find . -mindepth 1 -type d -printf '%P\0' | (cd "$passage" && xargs -0 mkdir -p))
xargs -a "$work/peer-secrets.list" -P "$jobs" -n 200 bash -c '
    passage=$1 plain=$2
    shift 2
    for p; do
        r=$passage/.age-recipients
        [ -e "$passage/${p%/*}/.age-recipients" ] && r=$passage/${p%/*}/.age-recipients
        age -e -R "$r" -o "$passage/$p.age" "$plain/$p" || exit 255
    done' - "$passage" "$plain"
git -C "$passage" add -A
git -C "$passage" -c gc.auto=0 commit -q -m "The benchmark's secrets"
git -C "$passage" gc --quiet
peer_check=$(cat "$plain/$get_path")
rm -rf "$plain"
peers_build=$((SECONDS - t0))
echo "   $peers_build s" >&2

# ---- row 2: one new secret in big/ -----------------------------------------------
# The same new value for the three.
values "$work/value-new.txt" 1 17
printf '%s' "$(cat "$work/value-new.txt")" >"$work/value-new"
objects() { # REPO -> "type size disk path" for each object the last commit added
    git -C "$1" rev-list --objects HEAD~1..HEAD |
        git -C "$1" cat-file --batch-check='%(objecttype) %(objectsize) %(objectsize:disk) %(rest)'
}
thin_pack() { # REPO -> bytes of a thin pack of HEAD against HEAD~1 (what a fetch of it sends)
    printf 'HEAD\n^HEAD~1\n' | git -C "$1" pack-objects --revs --thin --stdout -q | wc -c
}
sync
echo "== row 2: $new_path added: sesto set, pass insert -m, age -e + git commit" >&2
"${sesto_cmd[@]}" set --file "$work/value-new" "$new_path" >/dev/null
pass insert -m "$new_path" <"$work/value-new" >/dev/null
age -e -R "$passage/big/.age-recipients" -o "$passage/$new_path.age" "$work/value-new"
git -C "$passage" add "$new_path.age"
git -C "$passage" commit -q -m "Add given password for $new_path to store."
for t in sesto pass passage; do
    case $t in sesto) r=$store ;; pass) r=$PASSWORD_STORE_DIR ;; passage) r=$passage ;; esac
    [[ -z $(git -C "$r" status --porcelain) ]] || die "$t left changes uncommitted"
    objects "$r" >"$work/objects-$t"
    thin_pack "$r" >"$work/thin-$t"
done
[[ $("${sesto_cmd[@]}" get "$new_path") == "$(cat "$work/value-new")" ]] || die "sesto get $new_path differs"
[[ $(pass show "$new_path") == "$(cat "$work/value-new")" ]] || die "pass show $new_path differs"
# sesto's shard trees, at every level under .sesto/nodes: path, entries,
# bytes, and how many levels below .sesto/nodes it is. The deepest level
# holds the node files (format 2: four levels of one hex digit; format 1:
# one of two).
# One ls-tree and one cat-file for all of them (a store of 100,000 nodes has
# some 70,000 trees in format 2).
git -C "$store" ls-tree -r -t HEAD .sesto/nodes/ >"$work/nodes-ls"
awk '{ d = $4; sub(/\/[^\/]*$/, "", d); n[d]++ } END { for (d in n) print d, n[d] }' \
    "$work/nodes-ls" | LC_ALL=C sort >"$work/dir-entries"
awk '$2 == "tree" { print $3 }' "$work/nodes-ls" |
    git -C "$store" cat-file --batch-check='%(objectsize)' |
    paste -d" " <(awk '$2 == "tree" { print $4 }' "$work/nodes-ls") - | LC_ALL=C sort |
    LC_ALL=C join - "$work/dir-entries" |
    awk '{ d = split($1, parts, "/") - 2; if (d >= 1) print $1, $3, $2, d }' >"$work/all-shards"
levels=$(awk '$4 > m { m = $4 } END { print m }' "$work/all-shards")
awk -v l="$levels" '$4 == l' "$work/all-shards" >"$work/shards"
upper_max=$(awk -v l="$levels" '$4 < l && $3 > m { m = $3 } END { print m + 0 }' "$work/all-shards")
n_nodes=$(git -C "$store" ls-files .sesto/nodes | wc -l)

# ---- row 3: reads and the removal ------------------------------------------------
hf() { # NAME RUNS hyperfine-args... -> $out/growth-NAME.{json,md}
    local name=$1 runs=$2
    shift 2
    hyperfine --runs "$runs" --style basic \
        --export-json "$out/growth-$name.json" --export-markdown "$out/growth-$name.md" "$@"
}
sync
load_before_reads=$(uptime)
sesto_get="sesto get $get_path"
pass_get="pass show $get_path"
age_get="age -d $get_path.age"
echo "== row 3: get ($get_runs runs each)" >&2
[[ $(pass show "$get_path") == "$peer_check" ]] || die "pass show $get_path differs"
[[ $(age -d -i "$keys/admin.age" "$passage/$get_path.age") == "$peer_check" ]] || die "age -d $get_path.age differs"
hf get "$get_runs" -N --warmup 3 \
    -n "$sesto_get" "${sesto_cmd[*]} get $get_path" \
    -n "$pass_get" "pass show $get_path" \
    -n "$age_get" "age -d -i $keys/admin.age $passage/$get_path.age"
# A secret in an ordinary folder, beside one `age -d` of one file: the
# cost of a read at this store size, not of the large folder.
ord_path=app07/secret-0123
sesto_ord="sesto get $ord_path"
echo "== row 3: get of $ord_path beside age -d, warm ($get_runs runs each)" >&2
[[ -n $("${sesto_cmd[@]}" get "$ord_path") ]] || die "sesto get $ord_path printed nothing"
hf warm-get "$get_runs" -N --warmup 3 \
    -n "$sesto_ord" "${sesto_cmd[*]} get $ord_path" \
    -n "$age_get" "age -d -i $keys/admin.age $passage/$get_path.age"
if ((cold_runs > 0)) && [[ -w /proc/sys/vm/drop_caches ]]; then
    echo "== row 3: the same, cold: page cache dropped before each run ($cold_runs runs each)" >&2
    # -N runs --prepare without a shell too.
    drop="sh -c 'sync && echo 3 >/proc/sys/vm/drop_caches'"
    hf cold-get "$cold_runs" -N --prepare "$drop" \
        -n "$sesto_ord" "${sesto_cmd[*]} get $ord_path" \
        -n "$age_get" "age -d -i $keys/admin.age $passage/$get_path.age"
else
    cold_runs=0
    echo "bench: no cold rows (BENCH_COLD_RUNS=0, or /proc/sys/vm/drop_caches is not writable: run as root)" >&2
fi
sesto_tree="sesto tree"
find_nodes="find .sesto/nodes -type f"
echo "== row 3: sesto tree and $find_nodes ($tree_runs runs each)" >&2
tree_lines=$("${sesto_cmd[@]}" tree | wc -l)
[[ $(cd "$store" && $find_nodes | wc -l) == "$n_nodes" ]] || die "$find_nodes does not list $n_nodes files"
hf tree "$tree_runs" -N --warmup 1 -n "$sesto_tree" "${sesto_cmd[*]} tree" \
    -n "$find_nodes" "find $store/.sesto/nodes -type f"

# Each removal starts from the same state: files, index and the trust pin.
cat >"$work/bin/reset" <<'EOF'
#!/bin/sh
# reset REPO COMMIT [PIN-COPY PIN]
git -C "$1" reset -q --hard "$2" && git -C "$1" clean -fdq || exit 1
[ -z "${3:-}" ] || cp "$3" "$4"
sync
EOF
cat >"$work/bin/passage-reencrypt" <<'EOF'
#!/usr/bin/env bash
# passage-reencrypt STORE FOLDER RECIPIENTS IDENTITY JOBS
set -euo pipefail
cd "$1/$2"
cp "$3" .age-recipients
find . -name '*.age' -print0 |
    xargs -0 -P "$5" -n 50 bash -c '
        set -o pipefail
        for f; do
            age -d -i "$0" "$f" | age -e -R .age-recipients -o "$f.tmp" && mv "$f.tmp" "$f" || exit 255
        done' "$4"
git add -A .
git commit -q -m "Reencrypt $2 to $(wc -l <.age-recipients) recipients"
EOF
chmod +x "$work/bin/reset" "$work/bin/passage-reencrypt"
granted=$(git -C "$store" rev-parse HEAD)
cp "$pin_file" "$work/pin-granted"
can_read=$("${sesto_cmd[@]}" member remove bob --dry-run --json | jq '.exposed | length')
sesto_remove="sesto member remove bob"
echo "== row 3: $sesto_remove ($remove_runs runs; bob could read $can_read secrets)" >&2
hf remove "$remove_runs" -N --prepare "$work/bin/reset $store $granted $work/pin-granted $pin_file" \
    -n "$sesto_remove" "${sesto_cmd[*]} member remove -f bob"
! "$sesto" --store "$store" -i "$keys/bob_ed25519" get "$get_path" >/dev/null 2>&1 ||
    die "bob still reads $get_path after member remove"
rm_files=$(git -C "$store" diff --shortstat HEAD~1 HEAD | awk '{ print $1 }')
passage_remove="passage-style: re-encrypt big/ to admin"
echo "== row 3: $passage_remove ($passage_runs runs)" >&2
p_granted=$(git -C "$passage" rev-parse HEAD)
hf passage-remove "$passage_runs" -N --prepare "$work/bin/reset $passage $p_granted" \
    -n "$passage_remove" "$work/bin/passage-reencrypt $passage big $keys/admin.rcpt $keys/admin.age $jobs"
! age -d -i "$keys/bob.age" "$passage/$get_path.age" >/dev/null 2>&1 ||
    die "bob still reads $get_path.age after the re-encryption"
pass_remove_name="pass init -p big ADMIN"
if [[ $pass_remove == 1 ]]; then
    echo "== row 3: $pass_remove_name (1 run, $big files one at a time)" >&2
    hf pass-remove 1 -N -n "$pass_remove_name" "pass init -p big $gpg_admin"
fi
stop_gpg_agent
load_after=$(uptime)
echo "== sesto fsck (not timed)" >&2
"${sesto_cmd[@]}" fsck >/dev/null || die "sesto fsck finds problems after the runs"

# ---- summary -------------------------------------------------------------------------
r1() { # FOLDERS TOOL COLUMN (3 commits, 4 loose, 5 loose bytes, 6 .git before, 7 .git after, 8 pack, 9 s)
    awk -F'\t' -v f="$1" -v t="$2" -v c="$3" '$1 == f && $2 == t { print $c }' "$work/row1.tsv"
}
quotient() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
kib() { awk -v b="$1" 'BEGIN { printf (b < 1048576) ? "%.1f KiB" : "%.2f MiB", (b < 1048576) ? b / 1024 : b / 1048576 }'; }
bytes() { printf "%s (%s)" "$1" "$(kib "$1")"; }
total() { awk -v c="$2" '{ t += $c } END { print t + 0 }' "$1"; }
stat_of() { # GROUP NAME -> m s md n cpu
    local f=$out/growth-$1.json
    m=$(mean "$f" "$2") s=$(sd "$f" "$2") md=$(median "$f" "$2") n=$(runs "$f" "$2")
    cpu=$(jq -r --arg n "$2" '.results[] | select(.command == $n) | .user + .system' "$f")
}
tcell() { stat_of "$1" "$2"; echo "$(time_cell "$m" "$s") (median $(time_cell "$md"), CPU $(time_cell "$cpu"), $n run$([[ $n == 1 ]] || echo s))"; }
le() { verdict "$(awk -v a="$1" -v b="$2" 'BEGIN { print (a <= b) }')"; }
lt() { verdict "$(awk -v a="$1" -v b="$2" 'BEGIN { print (a < b) }')"; }

l0=${layouts[0]}
per0=$(((inserts + l0 - 1) / l0))
git_s=$(r1 "$l0" sesto 7) git_p=$(r1 "$l0" pass 7) git_a=$(r1 "$l0" passage 7)
pk_s=$(r1 "$l0" sesto 8) pk_p=$(r1 "$l0" pass 8) pk_a=$(r1 "$l0" passage 8)
grow_s=$(total "$work/objects-sesto" 3) grow_p=$(total "$work/objects-pass" 3) grow_a=$(total "$work/objects-passage" 3)
raw_s=$(total "$work/objects-sesto" 2)
largest_tree=$(awk '$1 == "tree" && $2 > m { m = $2; p = $4 } END { print m + 0, (p == "" ? "(root)" : p) }' "$work/objects-sesto")
largest_tree_bytes=${largest_tree%% *} largest_tree_path=${largest_tree#* }
largest_tree_peer() { # TOOL -> "BYTES (`path`)"
    awk '$1 == "tree" && $2 > m { m = $2; p = $4 } END { printf "%d (`%s`)", m, (p == "" ? "(root)" : p) }' "$work/objects-$1"
}
shard_entries=$(awk '{ e += $2 } END { printf "%.0f", e / NR }' "$work/shards")
shard_max=$(awk '$3 > m { m = $3; e = $2 } END { print e, m }' "$work/shards")
per_entry=$(awk '{ e += $2; b += $3 } END { printf "%.2f", b / e }' "$work/shards")
n_shards=$(wc -l <"$work/shards")
nodes_tree_bytes=$(git -C "$store" cat-file -s HEAD:.sesto/nodes)
# At 1,000,000 nodes: every deepest shard there can be (format 2: 16^4, the
# id's first four hex digits; format 1: 256) holding 1,000,000 / that many
# entries of the size today's have; the levels above are full already (16
# entries each in format 2), so they stay as measured.
n_leaf=$(awk -v l="$levels" 'BEGIN { print (l == 1) ? 256 : 16 ^ l }')
proj_entries=$(awk -v n="$n_leaf" 'BEGIN { printf "%.0f", 1000000 / n }')
proj_bytes=$(awk -v e="$proj_entries" -v b="$per_entry" 'BEGIN { printf "%.0f", e * b }')
proj_largest=$(awk -v p="$proj_bytes" -v n="$nodes_tree_bytes" -v u="$upper_max" \
    'BEGIN { m = (p > n) ? p : n; print (m > u) ? m : u }')
stat_of get "$sesto_get"; get_m=$m
stat_of tree "$sesto_tree"; tree_m=$m
stat_of tree "$find_nodes"; find_m=$m find_s=$s
stat_of warm-get "$sesto_ord"; warm_m=$m warm_s=$s
stat_of warm-get "$age_get"; warm_age_m=$m warm_age_s=$s
if ((cold_runs > 0)); then
    stat_of cold-get "$sesto_ord"; cold_m=$m cold_s=$s
    stat_of cold-get "$age_get"; cold_age_m=$m cold_age_s=$s
fi
stat_of remove "$sesto_remove"; rm_m=$m
pass_version=$(pass version | sed -n 's/.*\(v[0-9][0-9.]*\).*/\1/p' | head -1)

{
    echo "# Growth benchmark results"
    echo
    echo "Last run of \`bench/growth.sh\` (issue 14; see README.md beside this file for what is measured and why)."
    echo "Today's format, measured as the baseline the next one is judged against: a FAIL here is expected, not hidden."
    echo
    header_lines
    echo "- Load when the reads were timed (row 3): \`${load_before_reads# }\`"
    echo "- $(age --version | sed 's/^/age /'), pass $pass_version, $(gpg --version | head -1 | sed 's/^gpg (GnuPG)/GnuPG/'), $(git --version), $(hyperfine --version)"
    echo
    echo "## Summary"
    echo
    echo "| # | what | sesto | target | result | pass | passage-style |"
    echo "| --- | --- | --- | --- | --- | --- | --- |"
    echo "| 1 | \`.git\` after \`git gc --aggressive --prune=now\`, $inserts secrets one commit each, $l0 folders of $per0 (\`du -sb .git\`) | $(bytes "$git_s") = $(quotient "$git_s" "$git_p") × pass, $(quotient "$git_s" "$git_a") × passage | ≤ 2.5 × pass | $(le "$git_s" "$(awk -v p="$git_p" 'BEGIN { print 2.5 * p }')") | $(bytes "$git_p") | $(bytes "$git_a") |"
    echo "| 1 | the same, the pack alone (\`.git/objects/pack/*.pack\`) | $(bytes "$pk_s") = $(quotient "$pk_s" "$pk_p") × pass, $(quotient "$pk_s" "$pk_a") × passage | ≤ 2.5 × pass | $(le "$pk_s" "$(awk -v p="$pk_p" 'BEGIN { print 2.5 * p }')") | $(bytes "$pk_p") | $(bytes "$pk_a") |"
    for nf in "${layouts[@]:1}"; do
        per=$(((inserts + nf - 1) / nf))
        echo "| 1 | \`.git\` after gc, $nf folders of $per | $(bytes "$(r1 "$nf" sesto 7)") = $(quotient "$(r1 "$nf" sesto 7)" "$(r1 "$nf" pass 7)") × pass, $(quotient "$(r1 "$nf" sesto 7)" "$(r1 "$nf" passage 7)") × passage | — | | $(bytes "$(r1 "$nf" pass 7)") | $(bytes "$(r1 "$nf" passage 7)") |"
    done
    for nf in "${layouts[@]}"; do
        per=$(((inserts + nf - 1) / nf))
        echo "| 1 | loose objects before gc, $nf folders of $per (count, bytes) | $(r1 "$nf" sesto 4), $(bytes "$(r1 "$nf" sesto 5)") | — | | $(r1 "$nf" pass 4), $(bytes "$(r1 "$nf" pass 5)") | $(r1 "$nf" passage 4), $(bytes "$(r1 "$nf" passage 5)") |"
    done
    echo "| 2 | objects one new secret in a folder of $big adds (loose, zlib size on disk) | $(bytes "$grow_s") | ≤ 8 KiB | $(le "$grow_s" 8192) | $(bytes "$grow_p") | $(bytes "$grow_a") |"
    echo "| 2 | the same, as a thin pack against the parent (what a fetch sends) | $(bytes "$(cat "$work/thin-sesto")") | — | | $(bytes "$(cat "$work/thin-pass")") | $(bytes "$(cat "$work/thin-passage")") |"
    echo "| 2 | largest tree that change rewrites, at $n_nodes nodes (measured) | $(bytes "$largest_tree_bytes") (\`$largest_tree_path\`) | — | | $(largest_tree_peer pass) | $(largest_tree_peer passage) |"
    echo "| 2 | largest tree at 1,000,000 nodes (**extrapolated**: $n_leaf deepest shards of $proj_entries entries × $per_entry bytes) | $(bytes "$proj_largest") | < 8 KiB | $(lt "$proj_largest" 8192) (extrapolated) | — | — |"
    echo "| 3 | get of \`$get_path\` | $(tcell get "$sesto_get") | < 5 ms | $(lt "$get_m" 0.005) | $(stat_of get "$pass_get"; time_cell "$m" "$s") | $(stat_of get "$age_get"; time_cell "$m" "$s") (\`age -d\`) |"
    echo "| 3 | \`sesto tree\` of all $n_nodes nodes ($tree_lines lines) | $(tcell tree "$sesto_tree") | < 1 s | $(lt "$tree_m" 1) | not measured | not measured |"
    echo "| 3 | the same, beside \`$find_nodes\` ($(time_cell "$find_m" "$find_s")) | $(ratio "$tree_m" "$(stat_of tree "$sesto_tree"; echo "$s")" "$find_m" "$find_s") × find | ≤ 2 × | $(le "$tree_m" "$(awk -v f="$find_m" 'BEGIN { print 2 * f }')") | — | — |"
    echo "| 3 | warm get of \`$ord_path\` (a folder of $secrets) beside one \`age -d\` ($(time_cell "$warm_age_m" "$warm_age_s")) | $(tcell warm-get "$sesto_ord") = $(ratio "$warm_m" "$warm_s" "$warm_age_m" "$warm_age_s") × age -d | ≤ 0.8 × | $(le "$warm_m" "$(awk -v a="$warm_age_m" 'BEGIN { print 0.8 * a }')") | — | — |"
    if ((cold_runs > 0)); then
        echo "| 3 | the same, page cache dropped before each run, beside one cold \`age -d\` ($(time_cell "$cold_age_m" "$cold_age_s")) | $(tcell cold-get "$sesto_ord") = $(ratio "$cold_m" "$cold_s" "$cold_age_m" "$cold_age_s") × age -d | ≤ 1.0 × | $(le "$cold_m" "$cold_age_m") | — | — |"
    else
        echo "| 3 | cold get | not measured (not root, or \`BENCH_COLD_RUNS=0\`) | ≤ 1.0 × age -d | | — | — |"
    fi
    if [[ $pass_remove == 1 ]]; then pr=$(stat_of pass-remove "$pass_remove_name"; time_cell "$m"); else pr="not run (\`BENCH_PASS_REMOVE=1\`)"; fi
    echo "| 3 | remove a member who could read $can_read secrets | $(tcell remove "$sesto_remove"), $rm_files files changed | < 5 s | $(lt "$rm_m" 5) | $pr | $(stat_of passage-remove "$passage_remove"; time_cell "$m" "$s") ($big files, $jobs at a time) |"
    echo
    echo "Sizes are bytes (KiB = 1,024 bytes). Ratios are sesto's size over the peer's."
    echo "The row 2 and 3 peers are not the same store as sesto's: big/ holds the same number of files, the other $folders folders $peer_rest each (README.md says why that does not change what is measured)."
    echo
    echo "## Row 1: $inserts inserts, one commit each"
    echo
    echo "Values: $inserts strings of 20-60 characters from a seeded generator, the same at the same paths for all three."
    echo "Time is the whole loop (one process per insert, as a user's shell loop), for orientation only."
    echo
    echo "| layout | tool | commits | loose objects | loose bytes | \`.git\` before gc | \`.git\` after gc | pack after gc | time | per insert |"
    echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    while IFS=$'\t' read -r f t c lc lb gb ga pk secs; do
        per=$(((inserts + f - 1) / f))
        echo "| $f × $per | $t | $c | $lc | $lb | $gb | $ga | $pk | $secs s | $(awk -v s="$secs" -v n="$inserts" 'BEGIN { printf "%.0f ms", 1000 * s / n }') |"
    done <"$work/row1.tsv"
    echo
    echo "## Row 2: the objects \`$new_path\` adds"
    echo
    echo "\`git rev-list --objects HEAD~1..HEAD | git cat-file --batch-check='%(objecttype) %(objectsize) %(objectsize:disk) %(rest)'\`; on disk is the loose object's zlib size."
    echo "The thin pack is \`git pack-objects --revs --thin --stdout\` of \`HEAD ^HEAD~1\`: deltas against objects the parent has, roughly what the change costs once packed."
    echo
    for t in sesto pass passage; do
        echo "### $t"
        echo
        echo "| type | path | size | on disk |"
        echo "| --- | --- | ---: | ---: |"
        awk '{ path = ($4 != "") ? "`" $4 "`" : ($1 == "tree") ? "(root)" : ""
               printf "| %s | %s | %d | %d |\n", $1, path, $2, $3 }' "$work/objects-$t"
        echo "| **total** | $(wc -l <"$work/objects-$t") objects | **$(total "$work/objects-$t" 2)** | **$(total "$work/objects-$t" 3)** |"
        echo
    done
    echo "sesto's nodes: $n_nodes files in $n_shards shard trees $levels level(s) under \`.sesto/nodes\` (mean $shard_entries entries, $per_entry bytes an entry; the largest $(echo "$shard_max" | awk '{ print $1 " entries, " $2 " bytes" }')); \`.sesto/nodes\` itself $nodes_tree_bytes bytes."
    echo "The one-secret change rewrote $(bytes "$raw_s") of objects before compression; most of it is the node of the folder the secret went into, which lists every entry with its key and is re-encrypted whole."
    echo
    echo "## Row 3: hyperfine"
    echo
    for g in get warm-get $( ((cold_runs > 0)) && echo cold-get) tree remove passage-remove $([[ $pass_remove == 1 ]] && echo pass-remove); do
        echo "### $g"
        echo
        sed -e "s#$work#\$TMP#g" "$out/growth-$g.md"
        echo
    done
    echo "## Building the stores (not timed)"
    echo
    echo '```'
    cat "$work/make.log"
    printf '%-52s %8s s\n' "sesto store, all told" "$store_build"
    printf '%-52s %8s s\n' "peers' stores (gpg --encrypt-files, age -e; $jobs at a time)" "$peers_build"
    echo '```'
} >"$results"
scrub "$out"/growth-*

echo >&2
sed -n '/^## Summary/,/^## Row 1/p' "$results" | sed '$d' >&2
echo "bench: wrote $results and $out/growth-*.json" >&2
