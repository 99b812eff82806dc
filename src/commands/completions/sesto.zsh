#compdef sesto
# zsh completion for sesto: subcommands, options, store paths and member names.
# Save it as _sesto in a directory of $fpath (before compinit runs), or load it
# in ~/.zshrc after compinit with:  source <(sesto completions zsh)
# Each TAB runs `sesto __complete`, which reads names with your keys and never
# prompts: a key that needs a passphrase (and no `sesto unlock`) completes nothing.
_sesto() {
    local -a lines
    lines=("${(@f)$(command sesto __complete zsh -- "${(@Q)words[1,CURRENT-1]}" "${(Q)PREFIX}" 2>/dev/null)}")
    local directive=${lines[1]}
    shift lines
    case $directive in
        files|dirs)
            [[ $PREFIX == -* ]] && compset -P '*='
            if [[ $directive == dirs ]]; then _files -/; else _files; fi
            return
            ;;
    esac
    local line value
    local -i width=0
    local -a words_ words_shown folders folders_shown
    for line in $lines; do
        value=${line%%$'\t'*}
        (( ${#value} > width )) && width=${#value}
    done
    for line in $lines; do
        value=${line%%$'\t'*}
        [[ -z $value ]] && continue
        if [[ $value == */ ]]; then
            folders+=("$value")
            folders_shown+=("$value")
        else
            words_+=("$value")
            if [[ $line == *$'\t'* ]]; then
                words_shown+=("${(r:width:)value}  -- ${line#*$'\t'}")
            else
                words_shown+=("$value")
            fi
        fi
    done
    (( $#words_ )) && compadd -l -d words_shown -a words_
    # A folder is not the end of a path: no space after it.
    (( $#folders )) && compadd -S '' -d folders_shown -a folders
    return 0
}
if [[ $funcstack[1] == _sesto ]]; then
    _sesto "$@"
else
    compdef _sesto sesto
fi
