#!/usr/bin/env bash
# Benchmark: sesto's team changes on the store of 10,000 secrets in 50
# folders, each beside the same change in a pass store and in a passage-style
# store (one age file per secret) holding the same values:
#   1. a member who reads everything arrives: `sesto member add bob` plus
#      `sesto grant bob /`; `pass init ADMIN BOB`; every age file re-encrypted
#      to admin and bob;
#   2. that member leaves: `sesto member remove bob`; `pass init ADMIN`; every
#      age file re-encrypted to admin alone.
# Run by hand (not in CI): bash bench/teams.sh. See bench/README.md.
#
# Environment:
#   BENCH_FOLDERS, BENCH_SECRETS  store shape (default 50 × 200)
#   BENCH_EXAMPLE, BENCH_KEEP     as for run.sh
#   BENCH_GET                     secret the checks read (default app07/secret-0123)
#   BENCH_ADD_RUNS                runs of sesto member add + grant (default 20)
#   BENCH_REMOVE_RUNS             runs of sesto member remove (default 3)
#   BENCH_PASSAGE_RUNS            runs of each passage-style re-encryption (default 3)
#   BENCH_PASS_RUNS               runs of each pass init (default 1: one re-encrypts
#                                 10,000 files one after the other, about 6 minutes)
#   BENCH_JOBS                    age processes at once in the passage loop (default nproc)
#   BENCH_RESULTS                 where the summary goes (default bench/results-teams.md)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/lib.sh"
get_path=${BENCH_GET:-app07/secret-0123}
add_runs=${BENCH_ADD_RUNS:-20}
remove_runs=${BENCH_REMOVE_RUNS:-3}
passage_runs=${BENCH_PASSAGE_RUNS:-3}
pass_runs=${BENCH_PASS_RUNS:-1}
jobs=${BENCH_JOBS:-$(nproc)}
results=${BENCH_RESULTS:-$here/results-teams.md}

install_hint="pass gnupg hyperfine age jq openssh-client"
need_tools cargo hyperfine age age-keygen jq git gpg gpgconf pass ssh-keygen xargs
bench_build
bench_workdir sesto-teams
bench_make_store

# ---- sealing ---------------------------------------------------------------
# gpg, pass and git read nothing of the user's (see lib.sh).
bench_seal_git
bench_seal_gpg

admin_key=$store/id_ed25519
# The admin key lives in the store's work tree, untracked: keep git clean off it.
printf '/id_ed25519\n/id_ed25519.pub\n' >>"$store/.git/info/exclude"
sesto_cmd=("$sesto" --store "$store" -i "$admin_key")
# sesto runs as an admin at their desk: trust pinned in $XDG_STATE_HOME (in
# $work). Every run starts from an older commit, whose roster the pin would
# rightly call a rollback, so each reset puts the pin back as well. (Not
# SESTO_TRUST: it makes every command read the git index and walk the whole
# history, which is CI's cost, not an admin's; see bench/README.md.)
"${sesto_cmd[@]}" trust --accept >/dev/null
pin_file=$(echo "$XDG_STATE_HOME"/sesto/trust/*.yaml)
[[ -f $pin_file ]] || die "sesto trust --accept wrote no pin under $XDG_STATE_HOME/sesto/trust"

# ---- keys ------------------------------------------------------------------
echo "== keys: bob's SSH key, gpg keys (ed25519/cv25519), age keys" >&2
mkdir -m 700 "$work/keys"
ssh-keygen -q -t ed25519 -N '' -C bob -f "$work/keys/bob_ed25519"
bob_pub=$work/keys/bob_ed25519.pub
gpg_admin=$(gpg_new_key admin)
gpg_bob=$(gpg_new_key bob)
for who in admin bob; do
    age-keygen -o "$work/keys/$who.age" 2>/dev/null
done
age-keygen -y "$work/keys/admin.age" >"$work/keys/admin.rcpt"
cat "$work/keys/admin.rcpt" >"$work/keys/admin+bob.rcpt"
age-keygen -y "$work/keys/bob.age" >>"$work/keys/admin+bob.rcpt"

# ---- the pass and passage-style stores ------------------------------------
# The same values sesto returns, as plaintext files in a private directory
# that is deleted as soon as both stores are built.
plain=$work/plain
bench_read_values "$admin_key" "$plain" "$jobs"
bench_make_pass_store "$plain" "$gpg_admin" "$jobs"

echo "== building the passage-style store (age -e, $jobs at a time)" >&2
t0=$SECONDS
passage=$work/passage
mkdir "$passage"
git -c init.defaultBranch=main -C "$passage" init -q
cp "$work/keys/admin.rcpt" "$passage/.age-recipients"
(cd "$plain" && find . -mindepth 1 -type d -printf '%P\0' | (cd "$passage" && xargs -0 mkdir -p))
xargs -a "$work/secrets.list" -P "$jobs" -n 50 bash -c '
    passage=$1 plain=$2
    shift 2
    for p; do age -e -R "$passage/.age-recipients" -o "$passage/$p.age" "$plain/$p" || exit 255; done' \
    - "$passage" "$plain"
git -C "$passage" add -A
git -C "$passage" commit -q -m "$n_secrets secrets"
passage_build=$((SECONDS - t0))
echo "   $passage_build s" >&2
check_value=$(cat "$plain/$get_path")
rm -rf "$plain"

# The passage-style recipient change (passage's own reencrypt_path does the
# same, one file at a time): write the recipients, decrypt each file with the
# admin's identity and encrypt it to the new list, then commit.
cat >"$work/bin/passage-reencrypt" <<'EOF'
#!/usr/bin/env bash
# passage-reencrypt STORE RECIPIENTS IDENTITY JOBS
set -euo pipefail
cd "$1"
cp "$2" .age-recipients
find . -path ./.git -prune -o -name '*.age' -print0 |
    xargs -0 -P "$4" -n 50 bash -c '
        set -o pipefail
        for f; do
            age -d -i "$0" "$f" | age -e -R .age-recipients -o "$f.tmp" && mv "$f.tmp" "$f" || exit 255
        done' "$3"
git add -A
git commit -q -m "Reencrypt to $(wc -l <.age-recipients) recipients"
EOF
# Puts a repository back at a commit: files, index, and nothing left over,
# all of it on disk (sync), so that no run pays for writing back the reset's
# files and every tool starts from files at rest, as a user's are.
cat >"$work/bin/reset" <<'EOF'
#!/bin/sh
# reset REPO COMMIT
git -C "$1" reset -q --hard "$2" && git -C "$1" clean -fdq && sync
EOF
# The same for the sesto store, with the trust pin of that moment.
mkdir "$work/states"
cat >"$work/bin/reset-sesto" <<EOF
#!/bin/sh
# reset-sesto STATE (saved by save_state in teams.sh)
"$work/bin/reset" "$store" "\$(cat "$work/states/\$1.commit")" &&
    cp "$work/states/\$1.pin" "$pin_file"
EOF
chmod +x "$work/bin/passage-reencrypt" "$work/bin/reset" "$work/bin/reset-sesto"
reset=$work/bin/reset
reset_sesto=$work/bin/reset-sesto
reencrypt=$work/bin/passage-reencrypt
save_state() {
    git -C "$store" rev-parse HEAD >"$work/states/$1.commit"
    cp "$pin_file" "$work/states/$1.pin"
}

# ---- measurements ----------------------------------------------------------
# Each group resets its store before every run (hyperfine --prepare), so every
# run makes the same change. The state after a group's last run is the start
# of the next group, and the checks look at it: the timed runs did the work.
head_of() { git -C "$1" rev-parse HEAD; }
hf() { # NAME RUNS hyperfine-args... -> $out/teams-NAME.{json,md}
    local name=$1 runs=$2
    shift 2
    hyperfine --runs "$runs" --style basic \
        --export-json "$out/teams-$name.json" --export-markdown "$out/teams-$name.md" "$@"
}
sesto_add="sesto member add bob + grant bob /"
sesto_add_only="sesto member add bob"
sesto_grant_only="sesto grant bob /"
sesto_remove="sesto member remove bob"
pass_add="pass init ADMIN BOB"
pass_remove="pass init ADMIN"
passage_add="age -d | age -e x$n_secrets to admin+bob, $jobs at a time"
passage_remove="age -d | age -e x$n_secrets to admin, $jobs at a time"

# The states the sesto runs start from: before bob, bob added, bob granted /.
add_cmd="${sesto_cmd[*]} member add bob --key-file $bob_pub"
grant_cmd="${sesto_cmd[*]} grant bob /"
save_state base
$add_cmd >/dev/null
save_state added
$grant_cmd >/dev/null
save_state granted
"$reset_sesto" base

echo "== hyperfine: sesto member add + grant ($add_runs runs), and each alone" >&2
# Two commands, so through sh; hyperfine subtracts the shell's start-up time.
hf sesto-add "$add_runs" --warmup 2 \
    --prepare "$reset_sesto base" -n "$sesto_add" "$add_cmd && $grant_cmd" \
    --prepare "$reset_sesto base" -n "$sesto_add_only" "$add_cmd" \
    --prepare "$reset_sesto added" -n "$sesto_grant_only" "$grant_cmd"
bob_value=$("$sesto" --store "$store" -i "$work/keys/bob_ed25519" get "$get_path") ||
    die "bob cannot read $get_path after member add + grant"
[[ $bob_value == "$check_value" ]] || die "bob reads a different value of $get_path than the admin"

echo "== hyperfine: sesto member remove ($remove_runs runs)" >&2
hf sesto-remove "$remove_runs" -N --prepare "$reset_sesto granted" \
    -n "$sesto_remove" "${sesto_cmd[*]} member remove bob"
! "$sesto" --store "$store" -i "$work/keys/bob_ed25519" get "$get_path" >/dev/null 2>&1 ||
    die "bob still reads $get_path after member remove"
"${sesto_cmd[@]}" fsck >/dev/null || die "sesto fsck finds problems after member remove"
rm_changed=$(git -C "$store" diff --shortstat HEAD~1 HEAD | awk '{ print $1 }')

# pass keeps a file only if its recipients already match, so the key ids each
# file is encrypted to tell whether the change happened.
pass_recipients() {
    gpg -v --batch --decrypt --list-only --keyid-format long "$PASSWORD_STORE_DIR/$get_path.gpg" 2>&1 |
        grep -c '^gpg: public key is'
}
echo "== hyperfine: $pass_add ($pass_runs runs, $n_secrets files one at a time)" >&2
base=$(head_of "$PASSWORD_STORE_DIR")
hf pass-add "$pass_runs" -N --prepare "$reset $PASSWORD_STORE_DIR $base" \
    -n "$pass_add" "pass init $gpg_admin $gpg_bob"
[[ $(pass_recipients) == 2 ]] || die "pass init did not re-encrypt $get_path to admin and bob"
[[ $(pass show "$get_path") == "$check_value" ]] || die "pass show $get_path differs from sesto get"

echo "== hyperfine: $pass_remove ($pass_runs runs)" >&2
with_bob=$(head_of "$PASSWORD_STORE_DIR")
hf pass-remove "$pass_runs" -N --prepare "$reset $PASSWORD_STORE_DIR $with_bob" \
    -n "$pass_remove" "pass init $gpg_admin"
[[ $(pass_recipients) == 1 ]] || die "pass init did not re-encrypt $get_path to the admin alone"
stop_gpg_agent

echo "== hyperfine: passage-style re-encryption ($passage_runs runs each)" >&2
base=$(head_of "$passage")
hf passage-add "$passage_runs" -N --prepare "$reset $passage $base" \
    -n "$passage_add" "$reencrypt $passage $work/keys/admin+bob.rcpt $work/keys/admin.age $jobs"
[[ $(age -d -i "$work/keys/bob.age" "$passage/$get_path.age") == "$check_value" ]] ||
    die "bob cannot read $get_path.age after the re-encryption"
with_bob=$(head_of "$passage")
hf passage-remove "$passage_runs" -N --prepare "$reset $passage $with_bob" \
    -n "$passage_remove" "$reencrypt $passage $work/keys/admin.rcpt $work/keys/admin.age $jobs"
! age -d -i "$work/keys/bob.age" "$passage/$get_path.age" >/dev/null 2>&1 ||
    die "bob still reads $get_path.age after the re-encryption to admin alone"
[[ $(age -d -i "$work/keys/admin.age" "$passage/$get_path.age") == "$check_value" ]] ||
    die "the admin cannot read $get_path.age after the re-encryption"
load_after=$(uptime)

# ---- summary ---------------------------------------------------------------
stat_of() { # GROUP NAME -> sets m s md n cpu (user + system, mean)
    local f=$out/teams-$1.json
    m=$(mean "$f" "$2") s=$(sd "$f" "$2") md=$(median "$f" "$2") n=$(runs "$f" "$2")
    cpu=$(jq -r --arg n "$2" '.results[] | select(.command == $n) | .user + .system' "$f")
}
# row CHANGE COMMAND GROUP NAME [SESTO_MEAN SESTO_SD] [TARGET VERDICT]: one line
# of the summary; with SESTO_MEAN, the ratio of sesto's mean to this one.
row() {
    stat_of "$3" "$4"
    local r="—"
    [[ -z ${5:-} ]] || r=$(ratio "$5" "$6" "$m" "$s")
    echo "| $1 | $2 | $(time_cell "$m" "$s") | $(time_cell "$md") | $(time_cell "$cpu") | $n | $r | ${7:-} | ${8:-} |"
}
stat_of sesto-add "$sesto_add"; add_m=$m add_s=$s
stat_of sesto-remove "$sesto_remove"; rm_m=$m rm_s=$s
ok_add=$(verdict "$(awk -v m="$add_m" 'BEGIN { print (m < 0.050) }')")
ok_rm=$(verdict "$(awk -v m="$rm_m" 'BEGIN { print (m < 5) }')")
n_nodes=$(git -C "$store" ls-files .sesto/nodes | wc -l)
pass_version=$(pass version | sed -n 's/.*\(v[0-9][0-9.]*\).*/\1/p' | head -1)
reenc="re-encrypts $n_secrets files one at a time, commits"
loop() { echo "passage-style: \`age -d \| age -e\` of $n_secrets files to $1, $jobs at a time, commit"; }

{
    echo "# Team benchmark results"
    echo
    echo "Last run of \`bench/teams.sh\` (see README.md beside this file for what is measured and why)."
    echo
    header_lines
    echo "- $(age --version | sed 's/^/age /'), pass $pass_version, $(gpg --version | head -1 | sed 's/^gpg (GnuPG)/GnuPG/'), $(git --version), $(hyperfine --version)"
    echo "- sesto store: $folders folders × $secrets secrets, $n_nodes node files, admin and bob with ssh-ed25519 keys, trust pinned in \$XDG_STATE_HOME"
    echo "- pass store: the same $n_secrets values (read back with \`sesto get\`), one \`.gpg\` per secret in the same folders, one \`.gpg-id\` at the root, gpg ed25519/cv25519 keys, in git"
    echo "- passage-style store: the same values, one \`.age\` per secret, \`.age-recipients\` at the root, age X25519 keys, in git"
    echo
    echo "## Summary"
    echo
    echo "\"sesto ÷ this\" is sesto's mean over this command's mean, for the same change in this run."
    echo "CPU is user + system time (mean), which on a shared machine moves less than wall time."
    echo
    echo "| change | command | mean ± σ | median | CPU | runs | sesto ÷ this | target | result |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    row "bob arrives, reads everything" "\`sesto member add bob --key-file bob.pub\` + \`sesto grant bob /\`" \
        sesto-add "$sesto_add" "" "" "< 50 ms" "$ok_add"
    row "" "\`pass init ADMIN BOB\` ($reenc)" pass-add "$pass_add" "$add_m" "$add_s"
    row "" "$(loop "admin and bob")" passage-add "$passage_add" "$add_m" "$add_s"
    row "" "(\`sesto member add bob\` alone)" sesto-add "$sesto_add_only"
    row "" "(\`sesto grant bob /\` alone)" sesto-add "$sesto_grant_only"
    row "bob leaves" "\`sesto member remove bob\` ($rm_changed files changed in its commit)" \
        sesto-remove "$sesto_remove" "" "" "< 5 s" "$ok_rm"
    row "" "\`pass init ADMIN\` ($reenc)" pass-remove "$pass_remove" "$rm_m" "$rm_s"
    row "" "$(loop admin)" passage-remove "$passage_remove" "$rm_m" "$rm_s"
    echo
    if ((pass_runs == 1)); then
        echo "pass ran once per change (\`BENCH_PASS_RUNS=1\`): one run re-encrypts $n_secrets files one after the other."
    fi
    if ((pass_runs == 1 || passage_runs == 1)); then
        echo "A single run has no σ; its ratio's ± carries sesto's σ only."
        echo
    fi
    for g in sesto-add sesto-remove pass-add pass-remove passage-add passage-remove; do
        echo "## hyperfine: $g"
        echo
        sed -e "s#$work#\$TMP#g" "$out/teams-$g.md"
        echo
    done
    echo "## Building the stores"
    echo
    echo '```'
    cat "$work/make.log"
    printf '%-52s %8s s\n' "pass store (gpg --encrypt-files, $jobs at a time)" "$pass_build"
    printf '%-52s %8s s\n' "passage-style store (age -e, $jobs at a time)" "$passage_build"
    echo '```'
} >"$results"
scrub "$out"/teams-*

echo >&2
sed -n '/^## Summary/,/^## hyperfine/p' "$results" | sed '$d' >&2
echo "bench: wrote $results and $out/teams-*.json" >&2
