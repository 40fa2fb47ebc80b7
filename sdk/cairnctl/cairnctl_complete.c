/*
 * cairnctl_complete.c - `cairnctl completion bash`: a bash completion
 * script generated from the command table, so it never drifts from the
 * commands and flags cairnctl has.
 *
 * The script holds the command names ("get", "config gray put"), each
 * command's flags, the global flags and the flags that take a value. At a
 * TAB it drops the flags (and the value after a flag that takes one) from
 * the words typed so far, then offers: after "-w" or "--write-out" the
 * output formats; for a word starting with "-" the flags of the longest
 * command the words name, plus the global ones; otherwise the next word of
 * every command the typed words begin (nothing once a command is whole:
 * its arguments are keys and names bash cannot know).
 */
#include <stdio.h>
#include <string.h>

#include "sdk/cairnctl/cairnctl.h"

static void print_flags(const struct ctl_opt *o, size_t n, bool values_only)
{
    for (size_t i = 0; i < n; i++) {
        if (values_only && o[i].is_bool) {
            continue;
        }
        printf(" --%s", o[i].name);
        if (o[i].short_name != 0) {
            printf(" -%c", o[i].short_name);
        }
    }
}

/* The body of the completion function: plain bash, no data. */
static const char *const script_fn =
    "_cairnctl() {\n"
    "    local cur=${COMP_WORDS[COMP_CWORD]} prev= w i skip=0 typed= c\n"
    "    [ \"$COMP_CWORD\" -gt 0 ] && prev=${COMP_WORDS[COMP_CWORD-1]}\n"
    "    COMPREPLY=()\n"
    "    if [ \"$prev\" = -w ] || [ \"$prev\" = --write-out ]; then\n"
    "        COMPREPLY=($(compgen -W \"simple json fields table protobuf\" "
    "-- \"$cur\"))\n"
    "        return 0\n"
    "    fi\n"
    "    for ((i = 1; i < COMP_CWORD; i++)); do\n"
    "        w=${COMP_WORDS[i]}\n"
    "        if [ $skip -eq 1 ]; then skip=0; continue; fi\n"
    "        case $w in\n"
    "        --) break ;;\n"
    "        -*=*) continue ;;\n"
    "        -*) [[ \" $_cairnctl_value_flags \" == *\" $w \"* ]] && skip=1\n"
    "            continue ;;\n"
    "        esac\n"
    "        typed=\"$typed${typed:+ }$w\"\n"
    "    done\n"
    "    if [[ $cur == -* ]]; then\n"
    "        local best= f=$_cairnctl_global_flags\n"
    "        for c in \"${_cairnctl_cmds[@]}\"; do\n"
    "            if [ \"$typed\" = \"$c\" ] || [[ $typed == \"$c \"* ]]; then\n"
    "                [ ${#c} -gt ${#best} ] && best=$c\n"
    "            fi\n"
    "        done\n"
    "        [ -n \"$best\" ] && f=\"${_cairnctl_flags[$best]} $f --help\"\n"
    "        COMPREPLY=($(compgen -W \"$f\" -- \"$cur\"))\n"
    "        return 0\n"
    "    fi\n"
    "    local next=\n"
    "    for c in \"${_cairnctl_cmds[@]}\"; do\n"
    "        if [ -z \"$typed\" ]; then\n"
    "            w=${c%% *}\n"
    "        elif [[ $c == \"$typed \"* ]]; then\n"
    "            w=${c#\"$typed \"}\n"
    "            w=${w%% *}\n"
    "        else\n"
    "            continue\n"
    "        fi\n"
    "        [[ \" $next \" == *\" $w \"* ]] || next=\"$next $w\"\n"
    "    done\n"
    "    COMPREPLY=($(compgen -W \"$next\" -- \"$cur\"))\n"
    "    return 0\n"
    "}\n"
    "complete -F _cairnctl cairnctl\n";

int cmd_completion(struct ctl *x)
{
    if (x->args_count != 1 || strcmp(x->args[0], "bash") != 0) {
        return ctl_fail(CTL_EXIT_BAD_ARGS, "completion takes one shell: bash");
    }
    size_t n, gn;
    const struct ctl_cmd *cmds = ctl_cmds(&n);
    const struct ctl_opt *g = ctl_global_opts(&gn);
    printf("# bash completion for cairnctl (cairnctl completion bash)\n");
    printf("_cairnctl_cmds=(");
    for (size_t i = 0; i < n; i++) {
        printf("%s\"%s\"", i > 0 ? " " : "", cmds[i].name);
    }
    printf(")\ndeclare -gA _cairnctl_flags=(");
    for (size_t i = 0; i < n; i++) {
        printf("\n    [\"%s\"]=\"", cmds[i].name);
        print_flags(cmds[i].opts, cmds[i].opts_count, false);
        printf("\"");
    }
    printf("\n)\n_cairnctl_global_flags=\"");
    print_flags(g, gn, false);
    printf("\"\n_cairnctl_value_flags=\"");
    print_flags(g, gn, true);
    for (size_t i = 0; i < n; i++) {
        print_flags(cmds[i].opts, cmds[i].opts_count, true);
    }
    printf("\"\n%s", script_fn);
    return 0;
}
