# bash completion for sesto: subcommands, options, store paths and member names.
# Load it with:  source <(sesto completions bash)
# Each TAB runs `sesto __complete`, which reads names with your keys and never
# prompts: a key that needs a passphrase (and no `sesto unlock`) completes nothing.
_sesto() {
    local out
    out=$(command sesto __complete bash -- "${COMP_LINE:0:COMP_POINT}" "$2" 2>/dev/null) || return 0
    local -a reply
    mapfile -t reply <<<"$out"
    case ${reply[0]} in
        files) compopt -o default; COMPREPLY=(); return 0 ;;
        dirs) compopt -o dirnames; COMPREPLY=(); return 0 ;;
    esac
    COMPREPLY=("${reply[@]:1}")
    # A folder is not the end of a path: no space after it.
    if [[ ${#COMPREPLY[@]} -eq 1 && ${COMPREPLY[0]} == */ ]]; then
        compopt -o nospace
    fi
    return 0
}
complete -F _sesto sesto
