/*
 * cairnctl_exec.c - `watch ... -- command args`: the command runs once per
 * event, as etcdctl 3.4's printWatchCh does it (watch_command.go): the
 * response is printed first, then for each of its events the command runs
 * to its end with the event in its environment:
 *
 *   ETCD_WATCH_REVISION=<the response header's revision>
 *   ETCD_WATCH_EVENT_TYPE="PUT" | "DELETE"     (Go's %q)
 *   ETCD_WATCH_KEY=<%q of the key>
 *   ETCD_WATCH_VALUE=<%q of the value>
 *
 * A command that cannot start or exits non-zero ends the watch: etcdctl
 * prints `command ["a" "b"] error (exit status 3)` (Go's exec error text)
 * to stderr and exits 1; so does this.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sdk/cairnctl/cairnctl.h"

/* Go's %q of p into a malloc'd string; NULL when out of memory. */
static char *goquote_dup(const uint8_t *p, size_t n)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f == NULL) {
        return NULL;
    }
    out_goquote_to(f, p, n);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* The child: sets the event's variables and becomes the command; on
 * failure writes errno into the close-on-exec pipe fd. Never returns. */
static void child(const char *const *argv, const char *const vars[4], int fd)
{
    static const char *const names[4] = {"ETCD_WATCH_REVISION",
                                         "ETCD_WATCH_EVENT_TYPE",
                                         "ETCD_WATCH_KEY", "ETCD_WATCH_VALUE"};
    for (int i = 0; i < 4; i++) {
        setenv(names[i], vars[i], 1);
    }
    execvp(argv[0], (char *const *)argv);
    int e = errno;
    ssize_t w = write(fd, &e, sizeof(e));
    (void)w;
    _exit(127);
}

/* Go's text for a failed run ("exit status 3", "signal: killed", exec's
 * "executable file not found in $PATH") into out. */
static void run_error(const char *cmd, int exec_errno, int status, char *out,
                      size_t n)
{
    if (exec_errno == ENOENT && strchr(cmd, '/') == NULL) {
        snprintf(out, n, "exec: \"%s\": executable file not found in $PATH",
                 cmd);
    } else if (exec_errno != 0) {
        int w = snprintf(out, n, "fork/exec %s: ", cmd);
        snprintf(out + w, n - (size_t)w, "%s", strerror(exec_errno));
        if (out[w] >= 'A' && out[w] <= 'Z') { /* Go's errno texts */
            out[w] = (char)(out[w] - 'A' + 'a');
        }
    } else if (WIFEXITED(status)) {
        snprintf(out, n, "exit status %d", WEXITSTATUS(status));
    } else {
        const char *s = WIFSIGNALED(status) ? strsignal(WTERMSIG(status)) : "";
        snprintf(out, n, "signal: %s", s != NULL ? s : "unknown");
        out[8] = (char)(out[8] >= 'A' && out[8] <= 'Z' ? out[8] - 'A' + 'a'
                                                       : out[8]);
    }
}

/* Runs argv once with vars; 0, or -1 with Go's error text in err. */
static int run_once(const char *const *argv, const char *const vars[4],
                    char *err, size_t err_size)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        snprintf(err, err_size, "pipe: %s", strerror(errno));
        return -1;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, err_size, "fork: %s", strerror(errno));
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid == 0) {
        close(p[0]);
        child(argv, vars, p[1]);
    }
    close(p[1]);
    int exec_errno = 0;
    ssize_t r;
    do { /* EOF at exec (close-on-exec), or the child's errno */
        r = read(p[0], &exec_errno, sizeof(exec_errno));
    } while (r < 0 && errno == EINTR);
    close(p[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (r != (ssize_t)sizeof(exec_errno)) {
        exec_errno = 0;
    }
    if (exec_errno == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        return 0;
    }
    run_error(argv[0], exec_errno, status, err, err_size);
    return -1;
}

int ctl_watch_exec(const char *const *argv, size_t argc,
                   const struct cairn_watch_resp *r)
{
    if (argc == 0 || argv[argc] != NULL) {
        /* our bug, not the user's: the callers build a NULL-terminated
         * argv from the args after "--" (cairnctl links no ASSERT) */
        fputs("cairnctl: internal error: watch command argv\n", stderr);
        abort();
    }
    for (size_t i = 0; i < r->events_count; i++) {
        const struct cairn_event *e = &r->events[i];
        char rev[32];
        snprintf(rev, sizeof(rev), "%" PRId64, r->header.revision);
        char *key = goquote_dup(e->kv.key, e->kv.key_len);
        char *value = goquote_dup(e->kv.value, e->kv.value_len);
        const char *vars[4] = {
            rev, e->type == CAIRN_EVENT_PUT ? "\"PUT\"" : "\"DELETE\"", key,
            value};
        char err[512];
        int rc = -1;
        if (key != NULL && value != NULL) {
            rc = run_once(argv, vars, err, sizeof(err));
        } else {
            snprintf(err, sizeof(err), "out of memory");
        }
        free(key);
        free(value);
        if (rc != 0) {
            fputs("command [", stderr);
            for (size_t k = 0; k < argc; k++) {
                if (k > 0) {
                    fputc(' ', stderr);
                }
                out_goquote_to(stderr, (const uint8_t *)argv[k],
                               strlen(argv[k]));
            }
            fprintf(stderr, "] error (%s)\n", err);
            return CTL_EXIT_ERROR;
        }
    }
    return -1;
}
