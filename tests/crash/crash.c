/*
 * crash.c - entry point of the crash-test program (build/.../tests/crash).
 *
 * Every .c under tests/crash/ is linked into this one program, so each
 * module's crash test is a subcommand: `crash kv ...` runs the store's
 * kill -9 test (crash_kv.c). A new module adds one row to the table below
 * and its own file. Scripts tests/crash/<name>.test run the subcommands
 * and print TAP.
 */
#include <stdio.h>
#include <string.h>

int crash_kv_main(int argc, char **argv);

struct sub {
    const char *name;
    int (*main)(int argc, char **argv);
    const char *what;
};

static const struct sub SUBS[] = {
    {"kv", crash_kv_main,
     "kill -9 a process applying batches to consensus/kv, reopen, compare"},
};

int main(int argc, char **argv)
{
    if (argc >= 2) {
        for (size_t i = 0; i < sizeof(SUBS) / sizeof(SUBS[0]); i++) {
            if (strcmp(argv[1], SUBS[i].name) == 0) {
                return SUBS[i].main(argc - 1, argv + 1);
            }
        }
    }
    fprintf(stderr, "usage: %s SUBCOMMAND [options]\n", argv[0]);
    for (size_t i = 0; i < sizeof(SUBS) / sizeof(SUBS[0]); i++) {
        fprintf(stderr, "  %-6s %s\n", SUBS[i].name, SUBS[i].what);
    }
    return 2;
}
