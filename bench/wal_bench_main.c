/*
 * wal_bench_main.c - wal-bench: how fast the WAL makes entries durable,
 * next to how fast the disk itself does synchronous 4 KiB writes.
 *
 *   wal-bench [--dir DIR] [--seconds S] [--entry-bytes N] [--json]
 *
 * For batch sizes 1, 16 and 256 it appends entries of --entry-bytes (256)
 * through log_append (one frame and one fdatasync per batch) for S seconds
 * (default 2) and reports entries/s and syncs/s. Then it measures the raw
 * rate of 4 KiB writes to a file opened with O_DSYNC on the same file
 * system (what `dd if=/dev/zero of=F bs=4k oflag=dsync` measures), and
 * prints the ratio of WAL syncs/s to raw writes/s: near 1.0 means the WAL
 * costs one device flush per batch and nothing more. All files live in a
 * temp directory under --dir (default "."), removed at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "consensus/log/log.h"

#define BATCH_MAX 256

struct result {
    unsigned batch;
    double entries_per_s;
    double syncs_per_s;
};

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)flag;
    (void)f;
    return remove(p);
}

static int bench_wal(const char *root, unsigned batch, uint32_t entry_bytes,
                     double seconds, struct result *res)
{
    static struct log_entry e[BATCH_MAX];
    char dir[4200];
    uint8_t *data = malloc(entry_bytes > 0 ? entry_bytes : 1);
    struct log *l = NULL;
    char msg[256];
    uint64_t next = 1, batches = 0, t0, t1;
    int rc;

    if (data == NULL) {
        return -ENOMEM;
    }
    memset(data, 0xab, entry_bytes);
    snprintf(dir, sizeof(dir), "%s/wal-%u", root, batch);
    rc = log_open(dir, NULL, &l, msg, sizeof(msg));
    if (rc < 0) {
        fprintf(stderr, "wal-bench: %s\n", msg);
        free(data);
        return rc;
    }
    t0 = clock_mono_ns();
    t1 = t0;
    /* Bounded by the clock; each pass is one fdatasync. */
    while ((double)(t1 - t0) < seconds * 1e9) {
        for (unsigned k = 0; k < batch; k++) {
            e[k].index = next + k;
            e[k].term = 1;
            e[k].type = 0;
            e[k].data = data;
            e[k].len = entry_bytes;
        }
        rc = log_append(l, e, batch, NULL);
        if (rc < 0) {
            fprintf(stderr, "wal-bench: append: %s\n", err_str(rc));
            break;
        }
        next += batch;
        batches++;
        t1 = clock_mono_ns();
    }
    log_close(l);
    free(data);
    res->batch = batch;
    res->syncs_per_s = (double)batches * 1e9 / (double)(t1 - t0);
    res->entries_per_s = res->syncs_per_s * batch;
    return rc < 0 ? rc : 0;
}

static int bench_dsync(const char *root, double seconds, double *rate)
{
    char path[4200];
    static uint8_t block[4096];
    uint64_t writes = 0, t0, t1;
    int fd;

    snprintf(path, sizeof(path), "%s/dsync.dat", root);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_DSYNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        return -errno;
    }
    memset(block, 0, sizeof(block));
    t0 = clock_mono_ns();
    t1 = t0;
    while ((double)(t1 - t0) < seconds * 1e9) {
        if (write(fd, block, sizeof(block)) != (ssize_t)sizeof(block)) {
            int rc = -errno;
            close(fd);
            return rc != 0 ? rc : -EIO;
        }
        writes++;
        t1 = clock_mono_ns();
    }
    close(fd);
    *rate = (double)writes * 1e9 / (double)(t1 - t0);
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: wal-bench [--dir DIR] [--seconds S] "
                    "[--entry-bytes N] [--json]\n");
}

int main(int argc, char **argv)
{
    const char *base = ".";
    double seconds = 2.0;
    uint32_t entry_bytes = 256;
    int json = 0;
    char root[4096];
    static const unsigned batches[] = {1, 16, 256};
    struct result res[3];
    double dsync = 0;
    int rc = 0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
            base = argv[++i];
        } else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            seconds = atof(argv[++i]);
        } else if (strcmp(argv[i], "--entry-bytes") == 0 && i + 1 < argc) {
            entry_bytes = (uint32_t)strtoul(argv[++i], NULL, 10);
        } else {
            usage();
            return 2;
        }
    }
    if (seconds <= 0 || seconds > 3600 || entry_bytes > (1u << 20)) {
        usage();
        return 2;
    }
    log_setup(LOG_WARN, LOG_FORMAT_TEXT, stderr);
    snprintf(root, sizeof(root), "%s/wal-bench-XXXXXX", base);
    if (mkdtemp(root) == NULL) {
        fprintf(stderr, "wal-bench: %s: %s\n", root, strerror(errno));
        return 1;
    }
    for (int k = 0; k < 3 && rc == 0; k++) {
        rc = bench_wal(root, batches[k], entry_bytes, seconds, &res[k]);
    }
    if (rc == 0) {
        rc = bench_dsync(root, seconds, &dsync);
    }
    nftw(root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    if (rc < 0) {
        fprintf(stderr, "wal-bench: %s\n", err_str(rc));
        return 1;
    }
    if (json) {
        printf("{\"entry_bytes\":%u,\"seconds\":%.1f,"
               "\"dsync_4k_writes_per_s\":%.0f,\"wal\":[",
               entry_bytes, seconds, dsync);
        for (int k = 0; k < 3; k++) {
            printf("%s{\"batch\":%u,\"entries_per_s\":%.0f,"
                   "\"syncs_per_s\":%.0f,\"syncs_vs_dsync\":%.3f}",
                   k ? "," : "", res[k].batch, res[k].entries_per_s,
                   res[k].syncs_per_s, res[k].syncs_per_s / dsync);
        }
        printf("]}\n");
    } else {
        printf("raw 4 KiB O_DSYNC writes: %.0f/s\n", dsync);
        printf("%6s %14s %12s %16s\n", "batch", "entries/s", "syncs/s",
               "syncs/dsync");
        for (int k = 0; k < 3; k++) {
            printf("%6u %14.0f %12.0f %16.3f\n", res[k].batch,
                   res[k].entries_per_s, res[k].syncs_per_s,
                   res[k].syncs_per_s / dsync);
        }
    }
    return 0;
}
