# Shared by bench/run.sh, bench/teams.sh, bench/scale.sh and bench/growth.sh (sourced, not
# run): the build, the temporary directory and its sealed environment, the
# store, a pass store of the same values, and the helpers that turn
# hyperfine's JSON into summary cells.
#
# The sourcing script sets `here` (the bench directory) and `set -euo pipefail`
# first. Knobs read here: BENCH_FOLDERS, BENCH_SECRETS, BENCH_EXAMPLE,
# BENCH_KEEP (see bench/README.md).

repo=$(dirname "$here")
folders=${BENCH_FOLDERS:-50}
secrets=${BENCH_SECRETS:-200}
example=${BENCH_EXAMPLE:-bench-make-store}
out=$here/out

die() {
    echo "bench: $*" >&2
    exit 1
}

# need_tools TOOL... — stop early, naming what to install, rather than halfway through.
need_tools() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || die "$tool is missing (apt-get install ${install_hint:-hyperfine age jq time})"
    done
}

# Builds the release binary and the store builder; records the load before,
# rustc, the commit and whether src/ had uncommitted changes, and the target dir.
bench_build() {
    load_before=$(uptime)
    rustc_version=$(rustc --version)
    local rev_before
    rev_before=$(cd "$repo" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
    echo "== building (release)" >&2
    (cd "$repo" && cargo build --release --quiet --bin sesto --example "$example") ||
        die "build failed; is [[example]] $example registered in Cargo.toml? (see bench/README.md)"
    # The commit the binary was built from (others may commit while this runs).
    rev=$(cd "$repo" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
    [[ $rev == "$rev_before" ]] || rev="$rev_before or $rev (HEAD moved during the build)"
    dirty=$(cd "$repo" && git status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null | grep -q . && echo " (with uncommitted changes in src/)" || true)
    target=$(cd "$repo" && cargo metadata --format-version 1 --no-deps | jq -r .target_directory)
}

# Functions to run when the script exits, before the temporary directory goes
# (teams.sh stops its gpg-agent here). Append names with `on_exit+=(name)`.
on_exit=()
bench_cleanup() {
    local f
    for f in "${on_exit[@]}"; do "$f" || true; done
    [[ -n ${BENCH_KEEP:-} ]] || rm -rf "$work"
}

# bench_workdir NAME — a temporary directory $work (private keys live there),
# copies of the binaries in $work/bin, and an environment sealed from the
# user's keys, config and state: sesto loads only what -i names.
bench_workdir() {
    work=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
    case $work in *[[:space:]]*) die "the temporary directory $work has a space in it; set TMPDIR" ;; esac
    [[ -z ${BENCH_KEEP:-} ]] || echo "bench: keeping $work" >&2
    trap bench_cleanup EXIT
    # Copies, so that another build into the shared target directory cannot
    # swap the binary in the middle of a measurement.
    mkdir "$work/bin"
    cp "$target/release/sesto" "$target/release/examples/$example" "$work/bin/"
    sesto=$work/bin/sesto
    make_store=$work/bin/$example
    store=$work/store
    mkdir -p "$work/home" "$out"
    export HOME=$work/home XDG_CONFIG_HOME=$work/home/.config \
        XDG_STATE_HOME=$work/home/.local/state XDG_DATA_HOME=$work/home/.local/share \
        XDG_CACHE_HOME=$work/home/.cache
    unset SESTO_IDENTITY SESTO_IDENTITY_FILE SESTO_NOW SESTO_FAILPOINT SESTO_STORE SESTO_TRUST
}

# bench_make_store [ARGS...] — the store in $store, built by the cargo example
# (extra ARGS such as `--keys DIR` are passed on); its stderr in $work/make.log.
bench_make_store() {
    echo "== building the store: $folders folders × $secrets secrets" >&2
    "$make_store" "$store" "$@" --folders "$folders" --secrets "$secrets" 2>"$work/make.log" ||
        { cat "$work/make.log" >&2; die "building the store failed"; }
    cat "$work/make.log" >&2
}

# ---- git, gpg and pass (teams.sh, scale.sh) ---------------------------------
# bench_seal_git — git reads no config of the user's or the system's, and the
# commits pass, git and the benchmark loops make have a fixed author.
bench_seal_git() {
    export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null \
        GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@bench.invalid \
        GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@bench.invalid
}

# bench_seal_gpg — gpg and pass read nothing of the user's: a keyring in
# $work/gnupg, the pass store in $work/pass, no PASSWORD_STORE_* settings;
# the gpg-agent it starts is stopped at exit.
bench_seal_gpg() {
    export GNUPGHOME=$work/gnupg PASSWORD_STORE_DIR=$work/pass
    unset GPG_AGENT_INFO $(compgen -e | grep '^PASSWORD_STORE_' | grep -vx PASSWORD_STORE_DIR || true)
    mkdir -m 700 "$GNUPGHOME"
    on_exit+=(stop_gpg_agent)
}
stop_gpg_agent() { gpgconf --kill gpg-agent 2>/dev/null; }

# gpg_new_key WHO — an ed25519/cv25519 key "WHO <WHO@bench.invalid>" with no
# passphrase (so no pinentry and no agent prompt); prints its fingerprint.
gpg_new_key() {
    gpg --batch --quiet --passphrase '' --quick-gen-key "$1 <$1@bench.invalid>" future-default default never >/dev/null 2>&1 ||
        die "gpg could not make a key for $1 (GNUPGHOME=$GNUPGHOME)"
    gpg_fpr "$1@bench.invalid"
}
gpg_fpr() { gpg --with-colons --list-keys "$1" 2>/dev/null | awk -F: '$1 == "fpr" { print $10; exit }'; }

# bench_read_values KEY PLAIN JOBS — every secret of $store as a plaintext
# file PLAIN/<path>, read back with `sesto get` (JOBS processes at once), so
# the other stores hold the store's own values. PLAIN is made private; the
# caller deletes it once the other stores are built. Lists the secrets in
# $work/secrets.list and sets n_secrets.
bench_read_values() {
    local key=$1 plain=$2 jobs=$3 t0=$SECONDS
    echo "== reading the values back with sesto get, $jobs at a time" >&2
    mkdir -m 700 "$plain"
    "$sesto" --store "$store" -i "$key" find '*' | grep -v '/$' >"$work/secrets.list"
    n_secrets=$(wc -l <"$work/secrets.list")
    sed -n 's#/[^/]*$##p' "$work/secrets.list" | sort -u | (cd "$plain" && xargs mkdir -p)
    xargs -a "$work/secrets.list" -P "$jobs" -n 50 bash -c '
        sesto=$1 store=$2 key=$3 plain=$4
        shift 4
        for p; do "$sesto" --store "$store" -i "$key" get "$p" >"$plain/$p" || exit 255; done' \
        - "$sesto" "$store" "$key" "$plain" ||
        die "sesto get failed while reading the values (run it on one: $sesto --store $store -i $key get $(head -1 "$work/secrets.list"))"
    echo "   $n_secrets values, $((SECONDS - t0)) s" >&2
}

# bench_make_pass_store PLAIN FPR JOBS — a pass store in $PASSWORD_STORE_DIR
# holding the files of PLAIN, encrypted to the gpg key FPR with the options
# pass itself uses (JOBS gpg processes at once), in a git repository made by
# `pass git init`, committed once and packed, so that pass commits its
# changes as sesto does. Sets pass_build (seconds).
bench_make_pass_store() {
    local plain=$1 fpr=$2 jobs=$3 t0=$SECONDS
    echo "== building the pass store (gpg --encrypt-files, $jobs at a time)" >&2
    pass init "$fpr" >/dev/null
    GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=init.defaultBranch GIT_CONFIG_VALUE_0=main pass git init >/dev/null
    (cd "$plain" && find . -type f -printf '%P\0' | xargs -0 -P "$jobs" -n 500 \
        gpg --batch --quiet --yes --compress-algo=none --no-encrypt-to -r "$fpr" --encrypt-files)
    (cd "$plain" && find . -name '*.gpg' -printf '%P\0' | xargs -0 cp --parents -t "$PASSWORD_STORE_DIR")
    git -C "$PASSWORD_STORE_DIR" add -A
    # Packed, as a repository that has lived a while is: otherwise the next
    # commit, inside a timed run, starts git's automatic gc in the background.
    git -C "$PASSWORD_STORE_DIR" -c gc.auto=0 commit -q -m "The benchmark's secrets"
    git -C "$PASSWORD_STORE_DIR" gc --quiet
    pass_build=$((SECONDS - t0))
    echo "   $pass_build s" >&2
}

# ---- summary helpers ------------------------------------------------------
# mean/sd/median FILE NAME: one statistic of the command named NAME (hyperfine
# -n) in a JSON export. sd is empty after a single run.
mean() { jq -r --arg n "$2" '.results[] | select(.command == $n) | .mean' "$1"; }
sd() { jq -r --arg n "$2" '.results[] | select(.command == $n) | .stddev // empty' "$1"; }
median() { jq -r --arg n "$2" '.results[] | select(.command == $n) | .median' "$1"; }
runs() { jq -r --arg n "$2" '.results[] | select(.command == $n) | .times | length' "$1"; }

time_cell() { # mean [sd] -> "12.3 ± 0.4 ms" or "2.81 ± 0.05 s"
    awk -v m="$1" -v s="${2:-}" 'BEGIN {
        k = (m < 1) ? 1000 : 1; u = (m < 1) ? "ms" : "s"; f = (m < 1) ? "%.1f" : "%.2f"
        if (s == "") printf f " " u, m * k; else printf f " ± " f " " u, m * k, s * k }'
}
# ratio A SA B SB -> "1.23 ± 0.05": two decimals, or two significant digits
# below 0.1 so that 0.0012 does not print as 0.00. An empty σ counts as 0.
ratio() {
    awk -v a="$1" -v sa="$2" -v b="$3" -v sb="$4" 'BEGIN {
        r = a / b; e = r * sqrt((sa / a) ^ 2 + (sb / b) ^ 2)
        d = (r >= 0.1) ? 2 : 1 - int(log(r) / log(10) - 1)
        printf "%.*f ± %.*f", d, r, d, e }'
}
verdict() { awk -v ok="$1" 'BEGIN { print (ok ? "**pass**" : "**FAIL**") }'; }

# Date, machine, load and build lines that open every results file.
header_lines() {
    local cpu mem
    cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
    mem=$(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
    echo "- Date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "- Machine: $(nproc) cores ($cpu), $mem, $(uname -sr)"
    echo "- Load before: \`${load_before# }\`"
    echo "- Load after: \`${load_after# }\`"
    echo "- sesto $rev$dirty, built with $rustc_version (release profile)"
}

# The exports name the temporary directory, which is gone after the run.
scrub() { sed -i -e "s#$work#\$TMP#g" "$@"; }
