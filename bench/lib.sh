# Shared by bench/run.sh and bench/teams.sh (sourced, not run): the build,
# the temporary directory and its sealed environment, the 10,000-secret
# store, and the helpers that turn hyperfine's JSON into summary cells.
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
