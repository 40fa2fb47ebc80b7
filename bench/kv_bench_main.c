/*
 * kv_bench_main.c - kv-bench: microbenchmark of the MVCC store
 * (consensus/kv on LMDB). Not a test: it prints numbers.
 *
 * What it measures, each on a fresh store in a temp dir:
 *  1. puts/s with 1, 100 and 1000 puts per write handle (one commit each),
 *     in the default sync mode (KV_SYNC_META_LAZY: data pages flushed at
 *     every commit, meta page lazily) and in KV_SYNC_NONE (no fsync);
 *     random 16-byte keys, 256-byte values.
 *  2. for each store size (default 100k and 1M keys of 256-byte values,
 *     laid out as prefixes of 100 keys): load time (1000 puts per commit,
 *     KV_SYNC_NONE, random prefix order), RSS after loading, then in a
 *     fresh process the open time and RSS right after kv_open and again
 *     after the read phase; point ranges/s, 100-key and 1000-key prefix
 *     ranges/s at the current revision, and historical point ranges/s (after
 * 10% of the keys got a second version, reading at the revision before those
 *     updates). Every read is one read handle (begin, range, end), as a
 *     server request would be.
 * RSS figures are VmRSS (everything resident, including the file pages of
 * LMDB's map this process touched) and RssAnon (heap and other anonymous
 * memory, which must not grow with the number of keys).
 *
 * Usage: kv-bench [--quick] [--keys N[,N...]] [--seconds S] [--dir D]
 *                 [--json]
 *   --quick     20k keys and short timings (a smoke run of a few seconds)
 *   --keys      store sizes for section 2 (default 100000,1000000)
 *   --seconds   time per throughput figure (default 2)
 *   --dir       parent directory for the stores (default $TMPDIR or /tmp)
 *   --json      one JSON object instead of the table
 * Internal: kv-bench --probe DIR SECONDS runs the fresh-process part.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/prng.h"
#include "consensus/kv/kv.h"

#define VALUE_BYTES 256
#define PREFIX_KEYS 100
#define RESULTS_MAX 64

struct result {
    char name[64];
    char sync[16];
    uint64_t keys; /* store size, 0 when not relevant */
    uint64_t ops;
    double secs;
};

struct sizes {
    uint64_t keys;
    double load_secs;
    int64_t rss_load_kb, anon_load_kb;
    double open_ms;
    int64_t rss_open_kb, anon_open_kb;
    int64_t rss_read_kb, anon_read_kb;
    uint64_t db_bytes;
};

struct bench {
    char root[512];
    double seconds;
    bool json;
    struct result res[RESULTS_MAX];
    int nres;
    struct sizes sz[8];
    int nsz;
    uint8_t value[VALUE_BYTES];
    char self[512];
};

static double now_s(void)
{
    return (double)clock_mono_ns() / 1e9;
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "kv-bench: %s: %s\n", what, err_str(rc));
    exit(1);
}

static void rss_kb(int64_t *rss, int64_t *anon)
{
    *rss = -1;
    *anon = -1;
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL) {
        return;
    }
    char line[256];
    while (fgets(line, sizeof(line), f) != NULL) {
        long long v;
        if (sscanf(line, "VmRSS: %lld", &v) == 1) {
            *rss = v;
        } else if (sscanf(line, "RssAnon: %lld", &v) == 1) {
            *anon = v;
        }
    }
    fclose(f);
}

static void rm_tree(const char *dir)
{
    DIR *dh = opendir(dir);
    if (dh == NULL) {
        return;
    }
    struct dirent *e;
    char path[1024];
    while ((e = readdir(dh)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
            rm_tree(path);
        } else {
            unlink(path);
        }
    }
    closedir(dh);
    rmdir(dir);
}

static struct kv *open_store(const char *dir, enum kv_sync_mode sync)
{
    mkdir(dir, 0700);
    struct kv_options o = {0};
    o.sync = sync;
    o.quota_bytes = 8ull << 30; /* room for 1M keys and their history */
    struct kv *kv = NULL;
    int rc = kv_open(dir, &o, &kv);
    if (rc != 0) {
        die("kv_open", rc);
    }
    return kv;
}

static void add_result(struct bench *b, const char *name, const char *sync,
                       uint64_t keys, uint64_t ops, double secs)
{
    if (b->nres == RESULTS_MAX) {
        return;
    }
    struct result *r = &b->res[b->nres++];
    snprintf(r->name, sizeof(r->name), "%s", name);
    snprintf(r->sync, sizeof(r->sync), "%s", sync);
    r->keys = keys;
    r->ops = ops;
    r->secs = secs;
    if (!b->json) {
        fprintf(stderr, "  %-34s %-9s %8.0f ops/s\n", name, sync,
                secs > 0 ? (double)ops / secs : 0.0);
    }
}

/* ---- 1. put throughput ----------------------------------------------------
 */

static void bench_puts(struct bench *b, int batch, enum kv_sync_mode sync)
{
    char dir[600];
    snprintf(dir, sizeof(dir), "%s/puts-%d-%d", b->root, batch, (int)sync);
    struct kv *kv = open_store(dir, sync);
    uint64_t n = 0;
    double t0 = now_s(), t1 = t0;
    struct kv_result res = {0};
    while (t1 - t0 < b->seconds) {
        struct kv_write *wr;
        int rc = kv_write_begin(kv, NULL, NULL, &wr);
        if (rc != 0) {
            die("kv_write_begin", rc);
        }
        for (int i = 0; i < batch; i++, n++) {
            char key[24];
            snprintf(key, sizeof(key), "k%016" PRIx64, prng_mix(n));
            struct kv_put_req q = {0};
            struct kv_put_resp r;
            int64_t rev;
            q.key = (const uint8_t *)key;
            q.key_len = 17;
            q.value = b->value;
            q.value_len = VALUE_BYTES;
            rc = kv_put(wr, &q, &res, &r, &rev);
            if (rc != 0) {
                die("kv_put", rc);
            }
        }
        rc = kv_write_commit(wr, n, 1);
        if (rc != 0) {
            die("kv_write_commit", rc);
        }
        kv_result_free(&res);
        t1 = now_s();
    }
    char name[64];
    snprintf(name, sizeof(name), "put, %d per write txn", batch);
    add_result(b, name, sync == KV_SYNC_NONE ? "none" : "meta-lazy", 0, n,
               t1 - t0);
    kv_close(kv);
    rm_tree(dir);
}

/* ---- 2. loading and reading ------------------------------------------- */

static void prefix_key(char *buf, size_t cap, uint64_t prefix, unsigned i)
{
    snprintf(buf, cap, "p%07" PRIu64 "/%02u", prefix, i);
}

static uint64_t gcd(uint64_t a, uint64_t b)
{
    while (b != 0) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* Load keys (a multiple of 100) in random prefix order, 1000 per commit;
 * then give 10% of them a second version. *rev_loaded: revision after the
 * first pass. */
static void load(struct bench *b, struct kv *kv, uint64_t keys,
                 int64_t *rev_loaded)
{
    uint64_t nprefix = keys / PREFIX_KEYS;
    /* j -> j * mult mod nprefix visits the prefixes in a scattered order;
     * it is a permutation when mult and nprefix are coprime. */
    uint64_t mult = 2654435761ull;
    while (gcd(mult, nprefix) != 1) {
        mult += 2;
    }
    struct kv_result res = {0};
    struct kv_write *wr = NULL;
    uint64_t in_batch = 0, applied = 0;
    for (uint64_t pass = 0; pass < 2; pass++) {
        for (uint64_t j = 0; j < nprefix; j++) {
            uint64_t p = (j * mult) % nprefix;
            for (unsigned i = 0; i < PREFIX_KEYS; i++) {
                if (pass == 1 && (prng_mix(p * 131 + i) % 10) != 0) {
                    continue;
                }
                if (wr == NULL) {
                    int rc = kv_write_begin(kv, NULL, NULL, &wr);
                    if (rc != 0) {
                        die("kv_write_begin", rc);
                    }
                }
                char key[32];
                prefix_key(key, sizeof(key), p, i);
                struct kv_put_req q = {0};
                struct kv_put_resp r;
                int64_t rev;
                q.key = (const uint8_t *)key;
                q.key_len = strlen(key);
                q.value = b->value;
                q.value_len = VALUE_BYTES;
                int rc = kv_put(wr, &q, &res, &r, &rev);
                if (rc != 0) {
                    die("kv_put (load)", rc);
                }
                if (++in_batch == 1000) {
                    rc = kv_write_commit(wr, ++applied, 1);
                    if (rc != 0) {
                        die("kv_write_commit (load)", rc);
                    }
                    wr = NULL;
                    in_batch = 0;
                    kv_result_free(&res);
                }
            }
        }
        if (wr != NULL) {
            int rc = kv_write_commit(wr, ++applied, 1);
            if (rc != 0) {
                die("kv_write_commit (load)", rc);
            }
            wr = NULL;
            in_batch = 0;
            kv_result_free(&res);
        }
        if (pass == 0) {
            *rev_loaded = kv_rev(kv);
        }
    }
}

enum read_kind { READ_POINT, READ_PREFIX, READ_PREFIX1000, READ_HISTORY };
#define READ_KINDS 4

/* Reads for b->seconds; returns the count. */
static uint64_t reads(struct kv *kv, uint64_t keys, enum read_kind kind,
                      int64_t rev_loaded, double seconds, double *secs)
{
    uint64_t nprefix = keys / PREFIX_KEYS;
    struct prng r;
    prng_seed(&r, 42 + (uint64_t)kind);
    uint64_t n = 0;
    double t0 = now_s(), t1 = t0;
    while (t1 - t0 < seconds) {
        for (int rep = 0; rep < 256; rep++, n++) {
            struct kv_read *rd;
            int rc = kv_read_begin(kv, &rd);
            if (rc != 0) {
                die("kv_read_begin", rc);
            }
            char key[32], end[32];
            uint64_t p = prng_below(&r, nprefix);
            struct kv_range_req q = {0};
            if (kind == READ_PREFIX) {
                snprintf(key, sizeof(key), "p%07" PRIu64 "/", p);
                snprintf(end, sizeof(end), "p%07" PRIu64 "0", p); /* '/'+1 */
                q.range_end = (const uint8_t *)end;
                q.range_end_len = strlen(end);
            } else if (kind == READ_PREFIX1000) {
                /* Ten neighbouring prefixes (p000012x/..): 1000 keys, in
                 * ten runs of revisions (prefixes load in scattered
                 * order). Needs keys to be a multiple of 1000. */
                p = p / 10 * 10;
                if (p + 10 > nprefix) {
                    p = nprefix - 10;
                }
                snprintf(key, sizeof(key), "p%06" PRIu64, p / 10);
                snprintf(end, sizeof(end), "p%06" PRIu64, p / 10 + 1);
                q.range_end = (const uint8_t *)end;
                q.range_end_len = strlen(end);
            } else {
                prefix_key(key, sizeof(key), p,
                           (unsigned)prng_below(&r, PREFIX_KEYS));
            }
            q.key = (const uint8_t *)key;
            q.key_len = strlen(key);
            if (kind == READ_HISTORY) {
                q.revision = rev_loaded;
            }
            struct kv_result res = {0};
            struct kv_range_resp resp;
            rc = kv_range(rd, &q, &res, &resp);
            if (rc != 0) {
                die("kv_range", rc);
            }
            size_t want = kind == READ_PREFIX       ? PREFIX_KEYS
                          : kind == READ_PREFIX1000 ? 10 * PREFIX_KEYS
                                                    : 1;
            if (resp.kvs_count != want) {
                fprintf(stderr,
                        "kv-bench: range %s gave %zu records, not %zu\n", key,
                        resp.kvs_count, want);
                exit(1);
            }
            kv_result_free(&res);
            kv_read_end(rd);
        }
        t1 = now_s();
    }
    *secs = t1 - t0;
    return n;
}

/* The fresh process: open, RSS, reads, RSS; one line of numbers out. */
static int probe_main(const char *dir, double seconds, uint64_t keys)
{
    double t0 = now_s();
    struct kv_options o = {0};
    o.quota_bytes = 8ull << 30;
    struct kv *kv = NULL;
    int rc = kv_open(dir, &o, &kv);
    if (rc != 0) {
        die("kv_open (probe)", rc);
    }
    double open_ms = (now_s() - t0) * 1000.0;
    int64_t rss_open, anon_open, rss_read, anon_read;
    rss_kb(&rss_open, &anon_open);
    int64_t rev_loaded = 0;
    {
        struct kv_read *rd;
        if (kv_read_begin(kv, &rd) != 0) {
            return 1;
        }
        /* The revision right after the first pass: keys + 1. */
        rev_loaded = 1 + (int64_t)keys;
        kv_read_end(rd);
    }
    double s[READ_KINDS];
    uint64_t n[READ_KINDS];
    for (int k = 0; k < READ_KINDS; k++) {
        n[k] = reads(kv, keys, (enum read_kind)k, rev_loaded, seconds, &s[k]);
    }
    rss_kb(&rss_read, &anon_read);
    uint64_t db = 0, used = 0;
    kv_size(kv, &db, &used);
    kv_close(kv);
    printf("%.3f %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64, open_ms,
           rss_open, anon_open, rss_read, anon_read);
    for (int k = 0; k < READ_KINDS; k++) {
        printf(" %" PRIu64 " %.6f", n[k], s[k]);
    }
    printf(" %" PRIu64 "\n", db);
    return 0;
}

static void bench_size(struct bench *b, uint64_t keys)
{
    /* Whole thousands: the 1000-key prefix ranges need ten prefixes. */
    keys = (keys / (10 * PREFIX_KEYS)) * (10 * PREFIX_KEYS);
    if (keys == 0 || b->nsz == 8) {
        return;
    }
    char dir[600];
    snprintf(dir, sizeof(dir), "%s/size-%" PRIu64, b->root, keys);
    struct sizes *z = &b->sz[b->nsz++];
    memset(z, 0, sizeof(*z));
    z->keys = keys;
    struct kv *kv = open_store(dir, KV_SYNC_NONE);
    double t0 = now_s();
    int64_t rev_loaded = 0;
    load(b, kv, keys, &rev_loaded);
    z->load_secs = now_s() - t0;
    if (rev_loaded != 1 + (int64_t)keys) {
        fprintf(stderr, "kv-bench: revision after loading is %" PRId64 "\n",
                rev_loaded);
        exit(1);
    }
    int rc = kv_sync(kv);
    if (rc != 0) {
        die("kv_sync", rc);
    }
    rss_kb(&z->rss_load_kb, &z->anon_load_kb);
    kv_close(kv);
    if (!b->json) {
        fprintf(stderr, "  loaded %" PRIu64 " keys in %.1f s\n", keys,
                z->load_secs);
    }
    /* A fresh process opens the store and reads. */
    int p[2];
    if (pipe(p) != 0) {
        die("pipe", -errno);
    }
    char secs[32], nkeys[32];
    snprintf(secs, sizeof(secs), "%.3f", b->seconds);
    snprintf(nkeys, sizeof(nkeys), "%" PRIu64, keys);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        execl(b->self, b->self, "--probe", dir, secs, nkeys, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    char line[512] = {0};
    FILE *f = fdopen(p[0], "r");
    if (f == NULL || fgets(line, sizeof(line), f) == NULL) {
        fprintf(stderr, "kv-bench: the probe process gave no answer\n");
        exit(1);
    }
    fclose(f);
    int status = 0;
    waitpid(pid, &status, 0);
    uint64_t n[READ_KINDS];
    double s[READ_KINDS];
    if (sscanf(line,
               "%lf %" SCNd64 " %" SCNd64 " %" SCNd64 " %" SCNd64 " %" SCNu64
               " %lf %" SCNu64 " %lf %" SCNu64 " %lf %" SCNu64 " %lf %" SCNu64,
               &z->open_ms, &z->rss_open_kb, &z->anon_open_kb, &z->rss_read_kb,
               &z->anon_read_kb, &n[0], &s[0], &n[1], &s[1], &n[2], &s[2],
               &n[3], &s[3], &z->db_bytes) != 5 + 2 * READ_KINDS + 1) {
        fprintf(stderr, "kv-bench: bad probe answer: %s\n", line);
        exit(1);
    }
    static const char *const names[READ_KINDS] = {
        "point range, current rev", "prefix range (100 keys), current rev",
        "prefix range (1000 keys), current rev", "point range, historical rev"};
    for (int k = 0; k < READ_KINDS; k++) {
        add_result(b, names[k], "-", keys, n[k], s[k]);
    }
    rm_tree(dir);
}

/* ---- output ---------------------------------------------------------------
 */

static void print_table(const struct bench *b)
{
    printf("kv-bench: consensus/kv on LMDB, %d-byte values\n\n", VALUE_BYTES);
    printf("%-40s %-10s %10s %10s %12s\n", "operation", "sync", "keys", "ops",
           "ops/s");
    for (int i = 0; i < b->nres; i++) {
        const struct result *r = &b->res[i];
        char keys[24] = "-";
        if (r->keys) {
            snprintf(keys, sizeof(keys), "%" PRIu64, r->keys);
        }
        printf("%-40s %-10s %10s %10" PRIu64 " %12.0f\n", r->name, r->sync,
               keys, r->ops, r->secs > 0 ? (double)r->ops / r->secs : 0.0);
    }
    printf("\n%-9s %8s %10s %10s %9s %10s %10s %10s %10s %9s\n", "keys",
           "load s", "RSS load", "anon load", "open ms", "RSS open",
           "anon open", "RSS reads", "anon reads", "db MiB");
    for (int i = 0; i < b->nsz; i++) {
        const struct sizes *z = &b->sz[i];
        printf("%-9" PRIu64 " %8.1f %8" PRId64 "kB %8" PRId64
               "kB %9.2f %8" PRId64 "kB %8" PRId64 "kB %8" PRId64 "kB %8" PRId64
               "kB %9.1f\n",
               z->keys, z->load_secs, z->rss_load_kb, z->anon_load_kb,
               z->open_ms, z->rss_open_kb, z->anon_open_kb, z->rss_read_kb,
               z->anon_read_kb, (double)z->db_bytes / 1048576.0);
    }
    printf("\nput: random 17-byte keys into a fresh store, one commit per "
           "write txn; meta-lazy = default sync\n(data pages flushed at each "
           "commit), none = KV_SYNC_NONE. Reads: one read handle per range.\n"
           "load: 1000 puts per commit, KV_SYNC_NONE, plus a second version "
           "of 10%% of the keys.\nopen/reads columns come from a fresh "
           "process; RSS includes the LMDB map pages it touched,\nanon is "
           "RssAnon (heap).\n");
}

static void print_json(const struct bench *b)
{
    printf("{\"bench\":\"kv\",\"value_bytes\":%d,\"results\":[", VALUE_BYTES);
    for (int i = 0; i < b->nres; i++) {
        const struct result *r = &b->res[i];
        printf("%s{\"name\":\"%s\",\"sync\":\"%s\",\"keys\":%" PRIu64
               ",\"ops\":%" PRIu64 ",\"secs\":%.3f,\"ops_per_sec\":%.1f}",
               i ? "," : "", r->name, r->sync, r->keys, r->ops, r->secs,
               r->secs > 0 ? (double)r->ops / r->secs : 0.0);
    }
    printf("],\"sizes\":[");
    for (int i = 0; i < b->nsz; i++) {
        const struct sizes *z = &b->sz[i];
        printf("%s{\"keys\":%" PRIu64
               ",\"load_secs\":%.3f,\"rss_load_kb\":%" PRId64
               ",\"anon_load_kb\":%" PRId64
               ",\"open_ms\":%.3f,\"rss_open_kb\":%" PRId64
               ",\"anon_open_kb\":%" PRId64 ",\"rss_reads_kb\":%" PRId64
               ",\"anon_reads_kb\":%" PRId64 ",\"db_bytes\":%" PRIu64 "}",
               i ? "," : "", z->keys, z->load_secs, z->rss_load_kb,
               z->anon_load_kb, z->open_ms, z->rss_open_kb, z->anon_open_kb,
               z->rss_read_kb, z->anon_read_kb, z->db_bytes);
    }
    printf("]}\n");
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--probe") == 0) {
        return probe_main(argv[2], atof(argv[3]), strtoull(argv[4], NULL, 0));
    }
    static struct bench b; /* large; one per process (not a shared global) */
    b.seconds = 2.0;
    uint64_t keys[8] = {100000, 1000000};
    int nkeys = 2;
    const char *parent = getenv("TMPDIR");
    if (parent == NULL || *parent == 0) {
        parent = "/tmp";
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            b.seconds = 0.3;
            keys[0] = 20000;
            nkeys = 1;
        } else if (strcmp(argv[i], "--json") == 0) {
            b.json = true;
        } else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            b.seconds = atof(argv[++i]);
        } else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
            parent = argv[++i];
        } else if (strcmp(argv[i], "--keys") == 0 && i + 1 < argc) {
            nkeys = 0;
            char *s = argv[++i];
            while (*s && nkeys < 8) {
                keys[nkeys++] = strtoull(s, &s, 10);
                if (*s == ',') {
                    s++;
                }
            }
        } else {
            fprintf(stderr,
                    "usage: kv-bench [--quick] [--keys N[,N...]] [--seconds "
                    "S] [--dir D] [--json]\n");
            return 2;
        }
    }
    ssize_t n = readlink("/proc/self/exe", b.self, sizeof(b.self) - 1);
    if (n <= 0) {
        fprintf(stderr, "kv-bench: cannot find my own program\n");
        return 1;
    }
    b.self[n] = 0;
    snprintf(b.root, sizeof(b.root), "%s/kv-bench-XXXXXX", parent);
    if (mkdtemp(b.root) == NULL) {
        perror("kv-bench: mkdtemp");
        return 1;
    }
    for (int i = 0; i < VALUE_BYTES; i++) {
        b.value[i] = (uint8_t)('a' + i % 26);
    }
    static const int batches[] = {1, 100, 1000};
    static const enum kv_sync_mode syncs[] = {KV_SYNC_META_LAZY, KV_SYNC_NONE};
    for (int s = 0; s < 2; s++) {
        for (int i = 0; i < 3; i++) {
            bench_puts(&b, batches[i], syncs[s]);
        }
    }
    for (int i = 0; i < nkeys; i++) {
        bench_size(&b, keys[i]);
    }
    rm_tree(b.root);
    if (b.json) {
        print_json(&b);
    } else {
        print_table(&b);
    }
    return 0;
}
