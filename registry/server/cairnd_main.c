/*
 * cairnd_main.c - the cairnd program: parse settings, start, run the loop.
 *
 * Exit codes: 0 after a clean stop (SIGTERM/SIGINT), 1 when the settings or
 * the start fail (the message names the option or the file), 2 when the
 * member stopped itself after a storage failure.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "base/err.h"
#include "base/log.h"
#include "registry/server/options.h"
#include "registry/server/server.h"

int main(int argc, char **argv)
{
    struct options o;
    struct server s;
    enum log_level level = LOG_INFO;
    enum log_format format = LOG_FORMAT_TEXT;
    char err[1024] = "";
    uv_loop_t *loop = uv_default_loop();
    int rc;

    signal(SIGPIPE, SIG_IGN);
    if (argc > 1 && strcmp(argv[1], "snapshot") == 0) {
        return server_snapshot_command(argc, argv);
    }
    options_defaults(&o);
    rc = options_parse(&o, argc, argv, NULL, err, sizeof(err));
    if (rc == 1) {
        options_free(&o);
        return 0; /* --help or --version */
    }
    if (rc != 0) {
        fprintf(stderr, "cairnd: %s\n", err[0] != '\0' ? err : err_str(rc));
        options_free(&o);
        return 1;
    }
    (void)log_level_parse(o.log_level, &level);
    (void)log_format_parse(o.log_format, &format);
    log_setup(level, format,
              strcmp(o.log_outputs, "stdout") == 0 ? stdout : stderr);
    rc = server_start(&s, loop, &o, err, sizeof(err));
    if (rc != 0) {
        LOGE("server", "cannot start: %s", err[0] != '\0' ? err : err_str(rc));
        options_free(&o);
        return 1;
    }
    uv_run(loop, UV_RUN_DEFAULT);
    rc = s.exit_code;
    uv_loop_close(loop);
    options_free(&o);
    return rc;
}
