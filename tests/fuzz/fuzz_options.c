/*
 * fuzz_options.c - cairnd's settings parsers (registry/server/options.c) on
 * arbitrary text: the YAML config file, the command line and the CAIRN_*
 * environment.
 *
 * Goal: every input gives 0, 1 (help/version) or an error with a message;
 * no crash, no leak, no assertion (input from config files, CLI and the
 * environment never reaches one, STYLE.md section 5).
 *
 * Input: byte 0 picks the source, the rest is its text:
 *   0  a YAML config file, loaded through --config-file (the real path:
 *      flags, then the file, then derived fields and validation);
 *   1  command-line arguments, NUL-separated (argv[0] is "cairnd");
 *   2  environment entries, NUL-separated ("CAIRN_NAME=x").
 * Arguments or entries that name a config file are dropped: the file they
 * name would be arbitrary (/dev/stdin would block); source 0 covers files.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/log.h"
#include "registry/server/options.h"
#include "tests/fuzz/fuzz.h"

#define FUZZ_MAX_LEN 4096
#define ARGS_MAX     64

static char dir[256];
static char yaml_path[512];

static void cleanup(void)
{
    fuzz_empty_dir(dir);
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    log_setup(LOG_FATAL, LOG_FORMAT_TEXT, stderr);
    /* --help and --version print to stdout. */
    if (freopen("/dev/null", "w", stdout) == NULL) {
        abort();
    }
    fuzz_scratch_dir(dir, sizeof(dir));
    snprintf(yaml_path, sizeof(yaml_path), "%s/cairn.yaml", dir);
    atexit(cleanup);
    return 0;
}

/* Split text[0..n) (NUL-terminated copy) at NULs into out[first..). */
static int split(char *text, size_t n, char **out, int first, int cap)
{
    int k = first;
    size_t i = 0;
    while (i < n && k < cap) {
        char *s = text + i;
        size_t l = strlen(s);
        if (strstr(s, "config-file") == NULL &&
            strstr(s, "CONFIG_FILE") == NULL) {
            out[k++] = s;
        }
        i += l + 1;
    }
    out[k] = NULL;
    return k;
}

static void run(int argc, char **argv, char **envp)
{
    struct options o;
    char err[512];
    err[0] = '\0';
    options_defaults(&o);
    int rc = options_parse(&o, argc, argv, envp, err, sizeof(err));
    FUZZ_CHECK(rc == 0 || rc == 1 || rc < 0);
    /* An invalid setting is named in the message. */
    FUZZ_CHECK(rc != ERR_INVALID || err[0] != '\0');
    options_free(&o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    uint8_t mode = data[0] % 3;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    char *text = malloc(n + 1);
    memcpy(text, p, n);
    text[n] = '\0';
    char *argv[ARGS_MAX + 2];
    char *envp[ARGS_MAX + 1];
    char prog[] = "cairnd";
    envp[0] = NULL;
    argv[0] = prog;
    if (mode == 0) {
        char flag[] = "--config-file";
        fuzz_write_file(dir, "cairn.yaml", p, n);
        argv[1] = flag;
        argv[2] = yaml_path;
        argv[3] = NULL;
        run(3, argv, envp);
    } else if (mode == 1) {
        int argc = split(text, n, argv, 1, ARGS_MAX);
        run(argc, argv, envp);
    } else {
        split(text, n, envp, 0, ARGS_MAX);
        argv[1] = NULL;
        run(1, argv, envp);
    }
    free(text);
    return 0;
}
