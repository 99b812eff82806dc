#!/usr/bin/env bash
# Benchmark: `sesto import` (issue 13). Three rows, each one import of 3,000
# secrets into a fresh copy of a small store, as one transaction and one
# commit:
#
#   - a dotenv file of 3,000 NAME=value lines          (target: under 2 s)
#   - a YAML file of 3,000 secrets in 30 folders        (target: under 2 s)
#   - a pass store of 3,000 entries (gpg per file), beside the time gpg alone
#     takes to decrypt the same files: a shell loop of `gpg --decrypt`, and the
#     same loop run on every core (sesto runs gpg on every core too).
#
# Beside the file rows, the floor an import of 3,000 new secrets cannot go
# below on this disk: creating 3,000 files of a node's size in 256 shard
# directories (a Python loop; no crypto, no git), and the dotenv import with
# the store on tmpfs (/dev/shm), which shows sesto's own cost.
#
# Run as root with mkfs.ext4, the dotenv, YAML and floor rows are timed again
# on an ext4 file system made with mkfs.ext4's defaults (a loop image in the
# temporary directory, so on the same disk). That matters where the disk
# holding the temporary directory is ext4 *without a journal*, as on the
# machine these runs were made on: there ext4 skips inodes freed in the last
# minutes when it allocates new ones, scanning its inode tables, and every
# timed run follows the removal of the previous run's 3,000 files. With a
# journal (mkfs.ext4's default) it does not.
#
# Run by hand (not in CI): bash bench/import.sh. See bench/README.md.
#
# Environment:
#   BENCH_IMPORT_N        secrets per import (default 3000)
#   BENCH_RUNS            hyperfine runs for the dotenv and YAML rows (default 10)
#   BENCH_PASS_RUNS       hyperfine runs for the pass rows (default 3)
#   BENCH_RESULTS         where the summary goes (default bench/results-import.md)
#   BENCH_KEEP            keep the temporary directory
#   BENCH_EXT4            0: skip the rows on a journaled ext4 loop image
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/lib.sh"
n=${BENCH_IMPORT_N:-3000}
runs_n=${BENCH_RUNS:-10}
pass_runs=${BENCH_PASS_RUNS:-3}
results=${BENCH_RESULTS:-$here/results-import.md}
install_hint="hyperfine jq pass gnupg python3"

need_tools cargo hyperfine jq git gpg gpgconf pass python3 ssh-keygen
bench_build
bench_workdir sesto-import
bench_seal_git
bench_seal_gpg
export SESTO_NO_PROGRESS=1

# The store every run starts from: admin `bench`, one secret, committed
# (an empty repository, so sesto commits each change).
base=$work/base
mkdir -p "$base"
git -C "$base" init -q
ssh-keygen -q -t ed25519 -N "" -C bench -f "$work/id_ed25519"
s=("$sesto" -i "$work/id_ed25519")
(cd "$base" && "${s[@]}" init --name bench >/dev/null 2>&1)
printf 'x' | (cd "$base" && "${s[@]}" set existing/x)
fresh="rm -rf $store && cp -a $base $store"

echo "== inputs: $n secrets each" >&2
inputs=$work/inputs
plain=$work/plain
mkdir -p "$inputs"
mkdir -m 700 "$plain"
python3 - "$inputs" "$plain" "$n" <<'PY'
import os, random, sys
inputs, plain, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = random.Random(13)
alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
def value():
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(20, 60)))
with open(f"{inputs}/app.env", "w") as f:
    for i in range(n):
        f.write(f"SECRET_{i:05d}='{value()}'\n")
folders = 30
with open(f"{inputs}/app.yaml", "w") as f:
    for d in range(folders):
        f.write(f"app{d:02d}:\n")
        for i in range(d, n, folders):
            f.write(f"  secret-{i:05d}: \"{value()}\"\n")
# The pass store's plaintext: pass's layout, password first, 30 folders.
for i in range(n):
    d = f"{plain}/app{i % folders:02d}"
    os.makedirs(d, exist_ok=True)
    with open(f"{d}/secret-{i:05d}", "w") as f:
        f.write(value() + "\n")
PY

fpr=$(gpg_new_key bench)
bench_make_pass_store "$plain" "$fpr" "$(nproc)"
rm -rf "$plain"
find "$PASSWORD_STORE_DIR" -name '*.gpg' | sort >"$work/gpg.list"
[[ $(wc -l <"$work/gpg.list") -eq $n ]] || die "the pass store holds $(wc -l <"$work/gpg.list") entries, not $n"

echo "== checking each import once (one commit, $n secrets)" >&2
check() { # KIND ARGS... — one import into a fresh store, then its commit and count
    eval "$fresh"
    local before after
    before=$(git -C "$store" rev-list --count HEAD)
    (cd "$store" && "${s[@]}" import "$@" --json >"$work/check.json") || die "sesto import $* failed"
    after=$(git -C "$store" rev-list --count HEAD)
    [[ $((after - before)) -eq 1 ]] || die "sesto import $* made $((after - before)) commits, not one"
    [[ $(jq '.imported | length' "$work/check.json") -eq $n ]] || die "sesto import $* imported $(jq '.imported | length' "$work/check.json") secrets"
    git -C "$store" log -1 --format=%s >&2
}
check dotenv "$inputs/app.env" --to prod
check yaml "$inputs/app.yaml" --to prod
check pass
# A value read back matches what pass shows.
probe=app07/secret-00007
[[ $(cd "$store" && "${s[@]}" get "$probe") == $(pass show "$probe") ]] || die "$probe differs from pass show"

# The same store on tmpfs, and the file-creation floor.
shm=$(mktemp -d /dev/shm/sesto-import.XXXXXX)
remove_shm() { rm -rf "$shm"; }
on_exit+=(remove_shm)
fresh_shm="rm -rf $shm/store && cp -a $base $shm/store"
cat >"$work/floor.py" <<'PY'
import os, sys
top, n = sys.argv[1], int(sys.argv[2])
body = b"x" * 1000
for i in range(n):
    d = f"{top}/{i % 256:02x}"
    os.makedirs(d, exist_ok=True)
    fd = os.open(f"{d}/{i:032x}.age", os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
    os.write(fd, body)
    os.close(fd)
PY

# What the disk holding the temporary directory is: its file system, and for
# ext4 whether it has a journal (jbd2 lists the devices it journals).
disk=$(findmnt -no SOURCE,FSTYPE --target "$work" | head -1)
disk_dev=${disk%% *}
disk_fs=${disk##* }
journal=""
if [[ $disk_fs == ext4 ]]; then
    if compgen -G "/proc/fs/jbd2/${disk_dev##*/}-*" >/dev/null; then
        journal=" with a journal"
    else
        journal=" without a journal"
    fi
fi

# The same rows on a journaled ext4 made by mkfs.ext4's defaults.
ext4=""
if [[ ${BENCH_EXT4:-1} != 0 && $(id -u) == 0 ]] && command -v mkfs.ext4 >/dev/null; then
    truncate -s 1G "$work/ext4.img"
    mkfs.ext4 -q -F "$work/ext4.img"
    mkdir "$work/ext4"
    if mount -o loop "$work/ext4.img" "$work/ext4"; then
        ext4=$work/ext4
        unmount_ext4() { umount "$ext4"; }
        on_exit+=(unmount_ext4)
    else
        echo "bench: cannot mount a loop image here; no ext4 rows" >&2
    fi
fi
ext4_rows=()
if [[ -n $ext4 ]]; then
    fresh_ext4="rm -rf $ext4/store && cp -a $base $ext4/store"
    ext4_rows=(
        -n "dotenv on ext4" --prepare "$fresh_ext4" "cd $ext4/store && ${s[*]} import dotenv $inputs/app.env --to prod"
        -n "yaml on ext4" --prepare "$fresh_ext4" "cd $ext4/store && ${s[*]} import yaml $inputs/app.yaml --to prod"
        -n "floor on ext4" --prepare "rm -rf $ext4/floor" "python3 $work/floor.py $ext4/floor $n"
    )
fi

echo "== timing: dotenv and YAML, $runs_n runs" >&2
hyperfine --style basic --runs "$runs_n" --export-json "$out/import-files.json" \
    -n dotenv --prepare "$fresh" "cd $store && ${s[*]} import dotenv $inputs/app.env --to prod" \
    -n yaml --prepare "$fresh" "cd $store && ${s[*]} import yaml $inputs/app.yaml --to prod" \
    -n floor --prepare "rm -rf $work/floor" "python3 $work/floor.py $work/floor $n" \
    -n "dotenv on tmpfs" --prepare "$fresh_shm" "cd $shm/store && ${s[*]} import dotenv $inputs/app.env --to prod" \
    "${ext4_rows[@]}"

echo "== timing: pass and gpg alone, $pass_runs runs" >&2
hyperfine --style basic --runs "$pass_runs" --prepare "$fresh" --export-json "$out/import-pass.json" \
    -n "sesto import pass" "cd $store && ${s[*]} import pass" \
    -n "gpg loop" "while read -r f; do gpg --batch --quiet --decrypt \"\$f\" >/dev/null; done <$work/gpg.list" \
    -n "gpg loop, $(nproc) at once" "xargs -a $work/gpg.list -P $(nproc) -n 1 gpg --batch --quiet --decrypt >/dev/null"
load_after=$(uptime)
scrub "$out/import-files.json" "$out/import-pass.json"

f=$out/import-files.json
p=$out/import-pass.json
cell() { time_cell "$(mean "$1" "$2")" "$(sd "$1" "$2")"; }
under() { awk -v m="$(mean "$1" "$2")" 'BEGIN { exit !(m < 2) }' && verdict 1 || verdict 0; }
sesto_pass=$(mean "$p" "sesto import pass")
gpg_serial=$(mean "$p" "gpg loop")
gpg_par=$(mean "$p" "gpg loop, $(nproc) at once")
{
    echo "# sesto import"
    echo
    echo "\`bash bench/import.sh\`: one import of $n secrets into a fresh copy of a small"
    echo "store, each one transaction and one commit (checked before timing). Mean ± σ"
    echo "of hyperfine runs, release build."
    echo
    header_lines
    echo "- The temporary directory's disk: $disk_dev, $disk_fs$journal"
    echo
    echo "| import of $n secrets | time | target |"
    echo "|---|---|---|"
    echo "| dotenv file ($runs_n runs) | $(cell "$f" dotenv) | under 2 s: $(under "$f" dotenv) |"
    echo "| YAML file, 30 folders ($runs_n runs) | $(cell "$f" yaml) | under 2 s: $(under "$f" yaml) |"
    echo "| floor: creating $n files of 1,000 bytes in 256 directories, no crypto, no git (Python) | $(cell "$f" floor) | — |"
    if [[ -n $ext4 ]]; then
        echo "| dotenv file, the store on ext4 with a journal (mkfs.ext4 defaults, loop image on the same disk) | $(cell "$f" "dotenv on ext4") | under 2 s: $(under "$f" "dotenv on ext4") |"
        echo "| YAML file, the store on ext4 with a journal | $(cell "$f" "yaml on ext4") | under 2 s: $(under "$f" "yaml on ext4") |"
        echo "| floor on ext4 with a journal | $(cell "$f" "floor on ext4") | — |"
    fi
    echo "| dotenv file, the store on tmpfs (/dev/shm) | $(cell "$f" "dotenv on tmpfs") | under 2 s: $(under "$f" "dotenv on tmpfs") |"
    echo "| pass store, 30 folders ($pass_runs runs) | $(cell "$p" "sesto import pass") | — |"
    echo "| gpg alone: \`gpg --decrypt\` per file, one at a time | $(cell "$p" "gpg loop") | — |"
    echo "| gpg alone: the same, $(nproc) at once (xargs -P) | $(cell "$p" "gpg loop, $(nproc) at once") | — |"
    echo
    echo "sesto import pass / gpg loop one at a time: $(ratio "$sesto_pass" "$(sd "$p" "sesto import pass")" "$gpg_serial" "$(sd "$p" "gpg loop")");"
    echo "sesto import pass / gpg loop $(nproc) at once: $(ratio "$sesto_pass" "$(sd "$p" "sesto import pass")" "$gpg_par" "$(sd "$p" "gpg loop, $(nproc) at once")")."
    echo
    echo "An import of $n new secrets writes $n new node files (and their folders'),"
    echo "and creating that many files can be most of the time: the floor rows do"
    echo "nothing else. On tmpfs the same import shows what sesto itself costs."
    if [[ $journal == " without a journal" ]]; then
        echo
        echo "This disk is ext4 without a journal. There, ext4 will not reuse an inode"
        echo "freed in the last minutes and scans its inode tables for one it may use"
        echo "(\`recently_deleted\` and \`find_inode_bit\` in \`perf record\`), and each timed run"
        echo "comes right after the previous run's $n files were removed, so the first"
        echo "three rows measure that scan as much as sesto. ext4 with a journal, the"
        echo "default of mkfs.ext4, does not do it: see its rows."
    fi
    echo
    echo "The pass import is the gpg processes: sesto runs \`gpg --batch --quiet"
    echo "--decrypt FILE\` once per entry (on every core after the first, so that a"
    echo "passphrase is asked once), and what is left after them, writing $n secrets and"
    echo "their folders as one transaction, is about the dotenv row's time."
} >"$results"
cat "$results"
