/*
 * fuzz.h - what the libFuzzer targets in tests/fuzz/ share.
 *
 * Each target is one file, fuzz_<name>.c, defining LLVMFuzzerTestOneInput
 * over the real code of the core library, and a line
 * "#define FUZZ_MAX_LEN n" that tests/fuzz/run.sh reads for -max_len.
 * FUZZ_CHECK states a property of the code under test: when it fails the
 * target aborts, which libFuzzer reports as a crash with the input saved.
 * Helpers below are for targets that need a scratch directory.
 */
#ifndef CAIRN_TESTS_FUZZ_H
#define CAIRN_TESTS_FUZZ_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_CHECK(x)                                                          \
    do {                                                                       \
        if (!(x)) {                                                            \
            fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__,        \
                    __LINE__, #x);                                             \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* Remove every entry of dir (one level, files only; subdirectories are
 * emptied and removed one level down). */
static inline void fuzz_empty_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char path[4096];
    if (d == NULL) {
        return;
    }
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        if (unlink(path) != 0) {
            fuzz_empty_dir(path);
            rmdir(path);
        }
    }
    closedir(d);
}

/* Remove the scratch directories of fuzz processes that died (a crash
 * skips atexit): cairn-fuzz-<pid>-* under base whose pid is gone. */
static inline void fuzz_sweep_stale(const char *base)
{
    DIR *d = opendir(base);
    struct dirent *de;
    char path[4096];
    if (d == NULL) {
        return;
    }
    while ((de = readdir(d)) != NULL) {
        int pid = 0;
        if (sscanf(de->d_name, "cairn-fuzz-%d-", &pid) != 1 || pid <= 0 ||
            kill(pid, 0) == 0 || errno != ESRCH) {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", base, de->d_name);
        fuzz_empty_dir(path);
        rmdir(path);
    }
    closedir(d);
}

/* A fresh scratch directory for the process, on tmpfs when there is one
 * (fsyncs there are cheap): <base>/cairn-fuzz-<pid>-XXXXXX. Targets empty
 * it on every input and remove it at exit; fuzz_sweep_stale removes those
 * of processes that crashed. */
static inline const char *fuzz_scratch_dir(char *out, size_t cap)
{
    const char *base = getenv("FUZZ_TMPDIR");
    struct stat st;
    if (base == NULL) {
        base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) &&
                       access("/dev/shm", W_OK) == 0
                   ? "/dev/shm"
                   : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    }
    fuzz_sweep_stale(base);
    snprintf(out, cap, "%s/cairn-fuzz-%d-XXXXXX", base, (int)getpid());
    if (mkdtemp(out) == NULL) {
        perror("mkdtemp");
        abort();
    }
    return out;
}

/* Write p[0..len) to dir/name. */
static inline void fuzz_write_file(const char *dir, const char *name,
                                   const uint8_t *p, size_t len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        perror(path);
        abort();
    }
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, p + off, len - off);
        if (n <= 0) {
            perror(path);
            abort();
        }
        off += (size_t)n;
    }
    close(fd);
}

/* A TCP connection to addr, closed later with an RST (SO_LINGER 0) so that
 * this side leaves no TIME_WAIT. connect() is retried on a fresh socket:
 * at thousands of connections a second the kernel's ephemeral ports cycle
 * within the TIME_WAIT the server's side of an earlier connection keeps,
 * and a SYN that lands on one is refused. That is the harness, not a bug. */
static inline int fuzz_connect(const struct sockaddr *addr, socklen_t len)
{
    for (int attempt = 0;; attempt++) {
        int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        if (fd < 0) {
            perror("socket");
            abort();
        }
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        if (connect(fd, addr, len) == 0) {
            return fd;
        }
        int e = errno;
        close(fd);
        if (attempt == 50) {
            fprintf(stderr, "connect: %s\n", strerror(e));
            abort();
        }
        usleep(1000);
    }
}

#endif
