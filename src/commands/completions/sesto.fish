# fish completion for sesto: subcommands, options, store paths and member names.
# Save it as ~/.config/fish/completions/sesto.fish, or load it with:
#   sesto completions fish | source
# Each TAB runs `sesto __complete`, which reads names with your keys and never
# prompts: a key that needs a passphrase (and no `sesto unlock`) completes nothing.
function __sesto_complete
    set -l current (commandline -ct | string unescape 2>/dev/null)
    or set current (commandline -ct)
    set -l out (command sesto __complete fish -- (commandline -opc) "$current" 2>/dev/null)
    or return
    switch "$out[1]"
        case files
            __fish_complete_path (commandline -ct)
        case dirs
            __fish_complete_directories (commandline -ct)
        case '*'
            set -e out[1]
            # fish adds no space after a candidate ending in /: folders go on.
            printf '%s\n' $out
    end
end
complete -c sesto -f -a '(__sesto_complete)'
