# bash completion for connect-jobs(1): commands, options, and content names from the config
# (also for ls/search --content).

_connect_jobs_names()
{
        # The names of the config's content list ("name: x" appears nowhere else in it).
        local config=$1
        [[ -r $config ]] || return 0
        sed -n -E 's/^[[:space:]]*(-[[:space:]]+)?name:[[:space:]]*//p' -- "$config" |
                sed -E 's/[[:space:]]+#.*$//; s/^"(.*)"$/\1/; s/^'"'"'(.*)'"'"'$/\1/'
}

_connect_jobs()
{
        local cur prev words cword
        _init_completion || return

        local commands="list show log tail download error kill ls search content"
        local filters="--content --since --until --failed --tag --key"
        local grepopts="-F -i -w -v -l -c -m -A -B -C -e --color= -j"
        local global="-c --config --server --archive -o --output --utc -v --verbose -h --help -V --version"
        local config=/etc/connect-job-archiver/config.yaml
        local cmd="" i nargs=0

        for ((i = 1; i < cword; i++)); do
                case $cmd:${words[i]} in
                ls:-c | search:-c) ;; # grep's count after the command name
                ls:-[mABCej] | search:-[mABCej]) ((i++)) ;;
                *:--content | *:--since | *:--until | *:--tag | *:--key) ((i++)) ;;
                *:-c | *:--config) config=${words[i + 1]}; ((i++)) ;;
                *:--config=*) config=${words[i]#--config=} ;;
                *:--server | *:--archive | *:-o | *:--output | *:-n | *:--lines | *:-O | *:--output-file) ((i++)) ;;
                *:-*) ;;
                *)
                        if [[ -z $cmd ]]; then
                                cmd=${words[i]}
                        else
                                ((nargs++))
                        fi
                        ;;
                esac
        done

        if [[ $cmd == ls || $cmd == search ]]; then
                case $prev in
                --content)
                        local IFS=$'\n'
                        COMPREPLY=($(compgen -W "$(_connect_jobs_names "$config")" -- "$cur"))
                        return
                        ;;
                --since | --until)
                        COMPREPLY=($(compgen -W "today yesterday -1d -7d -30d -12h -30m" -- "$cur"))
                        return
                        ;;
                -c) [[ $cmd == search ]] && prev="" ;; # grep's count: takes no value
                --tag | --key | -[mABCej]) return ;;
                esac
                if [[ $cur == --color=* ]]; then
                        COMPREPLY=($(compgen -P --color= -W "auto always never" -- "${cur#--color=}"))
                        return
                fi
        fi

        case $prev in
        -c | --config | -O | --output-file)
                _filedir
                return
                ;;
        --archive)
                _filedir -d
                return
                ;;
        -o | --output)
                COMPREPLY=($(compgen -W "json text" -- "$cur"))
                return
                ;;
        --server | -n | --lines)
                return
                ;;
        esac

        if [[ -z $cmd ]]; then
                if [[ $cur == -* ]]; then
                        COMPREPLY=($(compgen -W "$global" -- "$cur"))
                else
                        COMPREPLY=($(compgen -W "$commands" -- "$cur"))
                fi
                return
        fi

        if [[ $cur == -* ]]; then
                local opts="-o --output --utc -h --help"
                case $cmd in
                ls) opts+=" $filters -r --reverse --archive --config" ;;
                search) opts+=" $filters $grepopts --archive --config" ;;
                *) opts+=" -v --verbose" ;;
                esac
                case $cmd in
                log | tail) opts+=" -n --lines" ;;
                download) opts+=" -O --output-file" ;;
                esac
                case $cmd in
                show | log | error | download) opts+=" --live" ;;
                esac
                COMPREPLY=($(compgen -W "$opts" -- "$cur"))
                return
        fi
        if ((nargs == 0)) && [[ $cmd != ls && $cmd != search ]]; then
                local IFS=$'\n'
                COMPREPLY=($(compgen -W "$(_connect_jobs_names "$config")" -- "$cur"))
        fi
} &&
        complete -F _connect_jobs connect-jobs
