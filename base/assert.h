/*
 * assert.h - assertions that stay on in release builds.
 *
 * Does:     ASSERT (always on, cheap invariants), DASSERT (debug builds only,
 *           expensive checks), STATIC_ASSERT (compile time).
 * Owns:     one process-wide failure hook (set at startup, before threads).
 * Threads:  ASSERT may fire on any thread; the hook must be async-safe enough
 *           to print and abort.
 * Errors:   a failed assertion prints expression, file, line, build id and
 *           whatever the hook adds (node id, last trace events), then aborts.
 * Not here: input validation. Input from the network, disk, config files or
 *           the command line never reaches an assertion: it is rejected with
 *           an error code (STYLE.md section 5).
 */
#ifndef CAIRN_BASE_ASSERT_H
#define CAIRN_BASE_ASSERT_H

#include <stdnoreturn.h>

/* Called (once) by a failing assertion before abort(); may print context. */
typedef void (*assert_hook_fn)(void *ctx);

/* Install the hook. Call at startup before any thread starts. */
void assert_hook_set(assert_hook_fn hook, void *ctx);

noreturn void assert__fail(const char *expr, const char *file, int line);

#define ASSERT(x)                                                              \
    do {                                                                       \
        if (__builtin_expect(!(x), 0)) {                                       \
            assert__fail(#x, __FILE__, __LINE__);                              \
        }                                                                      \
    } while (0)

#ifdef CAIRN_DEBUG
#define DASSERT(x) ASSERT(x)
#else
#define DASSERT(x)                                                             \
    do {                                                                       \
        (void)sizeof(x);                                                       \
    } while (0)
#endif

#define STATIC_ASSERT(x, why) _Static_assert(x, why)

#define UNREACHABLE() assert__fail("unreachable", __FILE__, __LINE__)

#endif
