/*
 * folio_pwrite_main.c - folio-pwrite: what a random 4 KiB pwrite costs,
 * by how the file's page cache was made (BENCHMARKS.md, "data.mdb cached
 * in single pages").
 *
 *   build/release/folio-pwrite DIR    (DIR on the file system to measure)
 *
 * Each case builds a 256 MiB file in DIR, then times 200,000 pwrites of
 * one 4 KiB page at random page offsets (the shape of an LMDB commit's
 * dirty pages):
 *   big-writes   the file written in 1 MiB pieces (the kernel may cache
 *                it in large folios, as it does data.mdb grown by LMDB's
 *                runs of pages, or a file copied in large writes);
 *   page-writes  the file written 4 KiB at a time (single pages);
 *   read-ahead   extended with ftruncate, its range read in with
 *                POSIX_FADV_WILLNEED 128 KiB at a time, then written in
 *                256 KiB pieces: what the store does ahead of LMDB.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FILE_BYTES ((size_t)256 << 20)
#define WRITES     200000

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int build(int fd, int how, const char *buf)
{
    size_t piece = how == 0 ? (1u << 20) : how == 1 ? 4096 : (256u << 10);
    for (size_t o = 0; o < FILE_BYTES; o += piece) {
        if (how == 2 && o % (4u << 20) == 0) {
            if (ftruncate(fd, (off_t)(o + (4u << 20))) != 0) {
                return -1;
            }
            for (size_t q = o; q < o + (4u << 20); q += 128u << 10) {
                (void)posix_fadvise(fd, (off_t)q, 128 << 10,
                                    POSIX_FADV_WILLNEED);
            }
        }
        if (pwrite(fd, buf, piece, (off_t)o) != (ssize_t)piece) {
            return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const char *names[] = {"big-writes", "page-writes", "read-ahead"};
    char path[4096];
    if (argc != 2) {
        fprintf(stderr, "usage: folio_pwrite DIR\n");
        return 2;
    }
    snprintf(path, sizeof(path), "%s/folio_pwrite.%d", argv[1], (int)getpid());
    char *buf = aligned_alloc(4096, 1u << 20);
    if (buf == NULL) {
        return 1;
    }
    memset(buf, 1, 1u << 20);
    for (int how = 0; how < 3; how++) {
        int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
        if (fd < 0 || build(fd, how, buf) != 0) {
            perror(path);
            unlink(path);
            return 1;
        }
        srand(1);
        double t0 = now();
        for (int i = 0; i < WRITES; i++) {
            size_t pg = (size_t)rand() % (FILE_BYTES / 4096);
            if (pwrite(fd, buf, 4096, (off_t)(pg * 4096)) != 4096) {
                perror("pwrite");
                break;
            }
        }
        double t1 = now();
        printf("%-12s %.2f us per random 4 KiB pwrite\n", names[how],
               (t1 - t0) / WRITES * 1e6);
        close(fd);
        unlink(path);
    }
    free(buf);
    return 0;
}
