#!/usr/bin/env bash
# Benchmark: one-secret changes on a store of 100,000 secrets in 100 folders,
# after `sesto setup-git` (sesto.commit, git's many-files index settings):
#   1. `sesto set` of one secret, committed;
#   2. the git objects that change adds (target: under 64 KiB);
#   3. `sesto sync` of that change between two clones of a bare remote, on
#      the pushing side and on the fetching side;
#   4. the same change in a pass store of the same values, in git:
#      `pass insert -f -m`, and the objects it adds.
# Run by hand (not in CI): bash bench/scale.sh. See bench/README.md.
#
# Environment:
#   BENCH_FOLDERS, BENCH_SECRETS  store shape (default 100 × 1000 here)
#   BENCH_EXAMPLE, BENCH_KEEP     as for run.sh
#   BENCH_GET                     the secret that changes (default app07/secret-0123)
#   BENCH_SET_RUNS                runs of each set or insert (default 20)
#   BENCH_SYNC_RUNS               runs of each sync (default 20)
#   BENCH_JOBS                    processes at once building the pass store (default nproc)
#   BENCH_WAIT_FOR                a file to wait for (every 30 s) after building and
#                                 before timing, e.g. one another job makes when done
#   BENCH_WAIT_MAX                longest wait in seconds (default 1800); then time anyway
#   BENCH_RESULTS                 where the summary goes (default bench/results-scale.md)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_FOLDERS=${BENCH_FOLDERS:-100} BENCH_SECRETS=${BENCH_SECRETS:-1000}
source "$here/lib.sh"
get_path=${BENCH_GET:-app07/secret-0123}
set_runs=${BENCH_SET_RUNS:-20}
sync_runs=${BENCH_SYNC_RUNS:-20}
jobs=${BENCH_JOBS:-$(nproc)}
wait_max=${BENCH_WAIT_MAX:-1800}
results=${BENCH_RESULTS:-$here/results-scale.md}
umask 077

install_hint="pass gnupg hyperfine jq openssh-client"
need_tools cargo hyperfine jq git gpg gpgconf pass ssh-keygen xargs base64
bench_build
bench_workdir sesto-scale
bench_seal_git
bench_seal_gpg
# git runs sesto's merge driver by the path setup-git records; on PATH as well,
# as a user has it.
export PATH=$work/bin:$PATH
t0=$SECONDS
bench_make_store
store_build=$((SECONDS - t0))

admin_key=$store/id_ed25519
# The admin key lives in the store's work tree, untracked: keep git off it.
printf '/id_ed25519\n/id_ed25519.pub\n' >>"$store/.git/info/exclude"
admin_fpr=$(ssh-keygen -lf "$admin_key.pub" | awk '{ print $2 }')
"$sesto" --store "$store" setup-git >/dev/null
# sesto runs as an admin at their desk: trust pinned in $XDG_STATE_HOME (in
# $work). Every run moves the store forward (nothing is reset), so the pin
# never sees a rolled-back roster. One row runs with SESTO_TRUST instead.
"$sesto" --store "$store" -i "$admin_key" trust --accept >/dev/null

# ---- the pass store ----------------------------------------------------------
gpg_admin=$(gpg_new_key admin)
plain=$work/plain
bench_read_values "$admin_key" "$plain" "$jobs"
bench_make_pass_store "$plain" "$gpg_admin" "$jobs"
rm -rf "$plain"

# ---- the remote and two clones -------------------------------------------
echo "== a bare remote and two clones, sesto setup-git in each" >&2
t0=$SECONDS
remote=$work/remote.git
git clone --quiet --bare "$store" "$remote"
for c in a b; do
    git clone --quiet "$remote" "$work/$c"
    "$sesto" --store "$work/$c" setup-git >/dev/null
done
clones_build=$((SECONDS - t0))
echo "   $clones_build s" >&2
clone_a=$work/a clone_b=$work/b

# ---- helpers the timed runs call -------------------------------------------
# A fresh value for every run: 24 random base64 characters, no newline.
cat >"$work/bin/new-value" <<'EOF'
#!/bin/sh
# new-value FILE
head -c 18 /dev/urandom | base64 | tr -d '\n' >"$1"
EOF
# The change clone A makes before each sync run (and pushes, for clone B's runs).
cat >"$work/bin/change" <<EOF
#!/bin/sh
# change CLONE [sync]
set -e
"$work/bin/new-value" "$work/value-a"
"$sesto" --store "\$1" -i "$admin_key" set --file "$work/value-a" "$get_path"
[ "\${2:-}" != sync ] || "$sesto" --store "\$1" -i "$admin_key" sync >/dev/null
EOF
chmod +x "$work/bin/new-value" "$work/bin/change"
new_value=$work/bin/new-value
change=$work/bin/change
value=$work/value

hf() { # NAME RUNS hyperfine-args... -> $out/scale-NAME.{json,md}
    local name=$1 runs=$2
    shift 2
    hyperfine --runs "$runs" --style basic \
        --export-json "$out/scale-$name.json" --export-markdown "$out/scale-$name.md" "$@"
}
index_info() { # REPO -> "version N, BYTES bytes"
    echo "version $(od -An -N4 -j4 -tu1 "$1/.git/index" | awk '{ print $4 }'), $(stat -c %s "$1/.git/index") bytes"
}
objects() { # REPO -> "type size disk path" for each object the last commit added
    git -C "$1" rev-list --objects HEAD~1..HEAD |
        git -C "$1" cat-file --batch-check='%(objecttype) %(objectsize) %(objectsize:disk) %(rest)'
}

# ---- wait for a quiet machine ------------------------------------------------
wait_note=
if [[ -n ${BENCH_WAIT_FOR:-} ]]; then
    echo "== waiting for $BENCH_WAIT_FOR (at most $wait_max s)" >&2
    t0=$SECONDS
    until [[ -e $BENCH_WAIT_FOR ]] || ((SECONDS - t0 >= wait_max)); do sleep 30; done
    if [[ -e $BENCH_WAIT_FOR ]]; then
        wait_note="Timed after \`$BENCH_WAIT_FOR\` appeared (the machine's other job had finished; waited $((SECONDS - t0)) s)."
    else
        wait_note="**\`$BENCH_WAIT_FOR\` had not appeared after $((SECONDS - t0)) s: timed anyway, beside the machine's other job.**"
    fi
fi
# Building wrote some 400,000 files: flush them, so that their writeback does
# not land in the timed runs. The load when timing starts (the builds above
# are not timed).
sync
load_before=$(uptime)

# ---- 1, 2: one secret changed and committed ----------------------------------
store_index_before=$(index_info "$store")
set_cmd="$sesto --store $store -i $admin_key set --file $value $get_path"
sesto_set="sesto set (index as setup-git leaves it)"
sesto_set_trust="sesto set, SESTO_TRUST instead of the pin"
sesto_set_v4="sesto set, index converted to version 4"
echo "== hyperfine: $sesto_set, and with SESTO_TRUST ($set_runs runs each)" >&2
hf sesto-set "$set_runs" -N --warmup 2 --prepare "$new_value $value" \
    -n "$sesto_set" "$set_cmd" \
    -n "$sesto_set_trust" "env SESTO_TRUST=$admin_fpr $set_cmd"
[[ $("$sesto" --store "$store" -i "$admin_key" get "$get_path") == "$(cat "$value")" ]] ||
    die "sesto get $get_path does not return the value the last set stored"
[[ -z $(git -C "$store" status --porcelain) ]] || die "sesto set left changes uncommitted in $store"
objects "$store" >"$work/objects-sesto"
git -C "$store" update-index --index-version 4
store_index_v4=$(index_info "$store")
echo "== hyperfine: $sesto_set_v4 ($set_runs runs)" >&2
hf sesto-set-v4 "$set_runs" -N --warmup 2 --prepare "$new_value $value" \
    -n "$sesto_set_v4" "$set_cmd"
store_index_after=$(index_info "$store")

# ---- 3: sync ------------------------------------------------------------------
sync_a="sesto sync in A (pushes one new commit)"
sync_b="sesto sync in B (fetches one commit, fast-forwards)"
echo "== hyperfine: $sync_a ($sync_runs runs)" >&2
hf sync-push "$sync_runs" -N --warmup 1 --prepare "$change $clone_a" \
    -n "$sync_a" "$sesto --store $clone_a -i $admin_key sync"
echo "== hyperfine: $sync_b ($sync_runs runs)" >&2
hf sync-fetch "$sync_runs" -N --warmup 1 --prepare "$change $clone_a sync" \
    -n "$sync_b" "$sesto --store $clone_b -i $admin_key sync"
[[ $(git -C "$clone_b" rev-parse HEAD) == $(git -C "$clone_a" rev-parse HEAD) ]] ||
    die "clone B is not at clone A's commit after sesto sync"
[[ $("$sesto" --store "$clone_b" -i "$admin_key" get "$get_path") == "$(cat "$work/value-a")" ]] ||
    die "clone B does not read the value clone A set last"
objects "$clone_b" >"$work/objects-sync"

# ---- 4: pass ------------------------------------------------------------------
pass_insert="pass insert -f -m (index as pass git init leaves it)"
pass_insert_v4="pass insert -f -m, index.skipHash and index version 4"
pass_index_before=$(index_info "$PASSWORD_STORE_DIR")
echo "== hyperfine: $pass_insert ($set_runs runs)" >&2
# Through sh for the redirection (pass is a bash script anyway); hyperfine
# subtracts the shell's start-up time.
hf pass-insert "$set_runs" --warmup 2 --prepare "$new_value $value" \
    -n "$pass_insert" "pass insert -f -m $get_path <$value"
[[ $(pass show "$get_path") == "$(cat "$value")" ]] || die "pass show $get_path does not return the value inserted last"
[[ -z $(git -C "$PASSWORD_STORE_DIR" status --porcelain) ]] || die "pass insert left changes uncommitted"
objects "$PASSWORD_STORE_DIR" >"$work/objects-pass"
git -C "$PASSWORD_STORE_DIR" config index.skipHash true
git -C "$PASSWORD_STORE_DIR" config index.version 4
git -C "$PASSWORD_STORE_DIR" update-index --index-version 4
echo "== hyperfine: $pass_insert_v4 ($set_runs runs)" >&2
hf pass-insert-v4 "$set_runs" --warmup 2 --prepare "$new_value $value" \
    -n "$pass_insert_v4" "pass insert -f -m $get_path <$value"
pass_index_after=$(index_info "$PASSWORD_STORE_DIR")
stop_gpg_agent
load_after=$(uptime)

echo "== sesto fsck (not timed)" >&2
"$sesto" --store "$store" -i "$admin_key" fsck >/dev/null || die "sesto fsck finds problems after the runs"

# ---- summary ---------------------------------------------------------------
stat_of() { # GROUP NAME -> sets m s md n cpu (user + system, mean)
    local f=$out/scale-$1.json
    m=$(mean "$f" "$2") s=$(sd "$f" "$2") md=$(median "$f" "$2") n=$(runs "$f" "$2")
    cpu=$(jq -r --arg n "$2" '.results[] | select(.command == $n) | .user + .system' "$f")
}
under() { verdict "$(awk -v m="$1" -v t="$2" 'BEGIN { print (m < t) }')"; }
row() { # WHAT COMMAND GROUP NAME [TARGET_S TARGET_TEXT]
    stat_of "$3" "$4"
    local target="—" result=""
    if [[ -n ${5:-} ]]; then target=$6 result=$(under "$m" "$5"); fi
    echo "| $1 | $2 | $(time_cell "$m" "$s") | $(time_cell "$md") | $(time_cell "$cpu") | $n | $target | $result |"
}
total() { awk -v c="$2" '{ t += $c } END { print t + 0 }' "$1"; }
quotient() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
kib() { awk -v b="$1" 'BEGIN { printf "%.1f KiB", b / 1024 }'; }
objects_table() { # FILE
    echo "| type | path | size (bytes) | on disk (bytes) |"
    echo "| --- | --- | ---: | ---: |"
    awk '{ path = ($4 != "") ? "`" $4 "`" : ($1 == "tree") ? "(root)" : ""
           printf "| %s | %s | %d | %d |\n", $1, path, $2, $3 }' "$1"
    echo "| **total** | $(wc -l <"$1") objects | **$(total "$1" 2)** ($(kib "$(total "$1" 2)")) | **$(total "$1" 3)** ($(kib "$(total "$1" 3)")) |"
}
# ratio_row WHAT SESTO_GROUP SESTO_NAME PASS_GROUP PASS_NAME
ratio_row() {
    local am as
    stat_of "$2" "$3"; am=$m as=$s
    stat_of "$4" "$5"
    echo "| $1 | $(time_cell "$am" "$as") | $(time_cell "$m" "$s") | $(ratio "$am" "$as" "$m" "$s") |"
}

n_nodes=$(git -C "$store" ls-files .sesto/nodes | wc -l)
n_commits=$(git -C "$store" rev-list --count HEAD)
sesto_bytes=$(total "$work/objects-sesto" 2) sesto_disk=$(total "$work/objects-sesto" 3)
pass_bytes=$(total "$work/objects-pass" 2) pass_disk=$(total "$work/objects-pass" 3)
ok_objects=$(verdict "$(awk -v b="$sesto_bytes" 'BEGIN { print (b < 65536) }')")
pass_version=$(pass version | sed -n 's/.*\(v[0-9][0-9.]*\).*/\1/p' | head -1)

{
    echo "# Scale benchmark results"
    echo
    echo "Last run of \`bench/scale.sh\` (see README.md beside this file for what is measured and why)."
    echo
    header_lines
    echo "- pass $pass_version, $(gpg --version | head -1 | sed 's/^gpg (GnuPG)/GnuPG/'), $(git --version), $(hyperfine --version)"
    [[ -z $wait_note ]] || echo "- $wait_note"
    echo
    echo "## The stores"
    echo
    echo "- sesto: $folders folders × $secrets secrets, $n_nodes node files, one admin (ssh-ed25519), after \`sesto setup-git\`: $(git -C "$store" config --local --get-regexp '^(sesto\.commit|index\.)' | tr '\n' ',' | sed 's/,$//; s/,/, /g'); trust pinned in \$XDG_STATE_HOME"
    echo "- sesto's git index: $store_index_before after setup-git and the first change; $store_index_v4 after \`git update-index --index-version 4\`; $store_index_after at the end; $n_commits commits at the end"
    echo "- clones A and B: \`git clone\` of a bare remote on the same disk, then \`sesto setup-git\` in each; index $(index_info "$clone_b") in B at the end"
    echo "- pass: the same $n_secrets values (read back with \`sesto get\`), one \`.gpg\` per secret in the same folders, gpg ed25519/cv25519 key, \`pass git init\`, packed; index $pass_index_before before the runs, $pass_index_after at the end"
    echo
    echo "## Summary"
    echo
    echo "The secret that changes is \`$get_path\`, to a fresh 24-character value each run."
    echo "CPU is user + system time (mean) of the command and the processes it waits for (git)."
    echo
    echo "| what | command | mean ± σ | median | CPU | runs | target | result |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
    row "one secret changed and committed" "\`sesto -i KEY set --file VALUE $get_path\`, index as \`sesto setup-git\` leaves it" sesto-set "$sesto_set" 0.2 "< 200 ms"
    row "" "the same, with \`SESTO_TRUST\` (CI's trust) instead of the pin" sesto-set "$sesto_set_trust" 0.2 "< 200 ms"
    row "" "the same, after \`git update-index --index-version 4\`" sesto-set-v4 "$sesto_set_v4" 0.2 "< 200 ms"
    row "sync, pushing side" "\`sesto sync\` in clone A after one \`sesto set\` there" sync-push "$sync_a"
    row "sync, fetching side" "\`sesto sync\` in clone B after A pushed one change" sync-fetch "$sync_b"
    row "pass: one secret changed and committed" "\`pass insert -f -m $get_path\`, repository as \`pass git init\` leaves it" pass-insert "$pass_insert"
    row "" "the same, with \`index.skipHash\` and index version 4" pass-insert-v4 "$pass_insert_v4"
    echo
    echo "| what | size of the objects one change adds | target | result |"
    echo "| --- | --- | --- | --- |"
    echo "| sesto set | $sesto_bytes bytes ($(kib "$sesto_bytes")), $sesto_disk on disk ($(kib "$sesto_disk")) | < 64 KiB | $ok_objects |"
    echo "| pass insert | $pass_bytes bytes ($(kib "$pass_bytes")), $pass_disk on disk ($(kib "$pass_disk")) | — | |"
    echo
    echo "## sesto beside pass"
    echo
    echo "sesto ÷ pass: below 1, sesto is faster or smaller."
    echo
    echo "| the same one-secret change | sesto | pass | sesto ÷ pass |"
    echo "| --- | --- | --- | --- |"
    ratio_row "change and commit, index as each tool leaves it" sesto-set "$sesto_set" pass-insert "$pass_insert"
    ratio_row "change and commit, both with skipHash and index version 4" sesto-set-v4 "$sesto_set_v4" pass-insert-v4 "$pass_insert_v4"
    echo "| objects added (bytes) | $sesto_bytes | $pass_bytes | $(quotient "$sesto_bytes" "$pass_bytes") |"
    echo "| objects added (on disk) | $sesto_disk | $pass_disk | $(quotient "$sesto_disk" "$pass_disk") |"
    echo
    echo "## The objects one change adds"
    echo
    echo "\`git rev-list --objects HEAD~1..HEAD | git cat-file --batch-check='%(objecttype) %(objectsize) %(objectsize:disk) %(rest)'\`"
    echo "after the last timed change; on disk is the loose object's zlib size."
    echo
    echo "### sesto (\`sesto set\`)"
    echo
    objects_table "$work/objects-sesto"
    echo
    echo "### sesto, what \`sesto sync\` brought into clone B"
    echo
    objects_table "$work/objects-sync"
    echo
    echo "### pass (\`pass insert\`)"
    echo
    objects_table "$work/objects-pass"
    echo
    for g in sesto-set sesto-set-v4 sync-push sync-fetch pass-insert pass-insert-v4; do
        echo "## hyperfine: $g"
        echo
        sed -e "s#$work#\$TMP#g" "$out/scale-$g.md"
        echo
    done
    echo "## Building the stores (not timed)"
    echo
    echo '```'
    cat "$work/make.log"
    printf '%-52s %8s s\n' "sesto store, all told" "$store_build"
    printf '%-52s %8s s\n' "pass store (gpg --encrypt-files, $jobs at a time)" "$pass_build"
    printf '%-52s %8s s\n' "bare remote, two clones, setup-git" "$clones_build"
    echo '```'
} >"$results"
scrub "$out"/scale-*

echo >&2
sed -n '/^## Summary/,/^## The objects/p' "$results" | sed '$d' >&2
echo "bench: wrote $results and $out/scale-*.json" >&2
