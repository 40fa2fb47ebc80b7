/* assert.c - the failure path of ASSERT: print, run the hook, abort. */
#include "base/assert.h"

#include <stdio.h>
#include <stdlib.h>

#ifndef CAIRN_BUILD_ID
#define CAIRN_BUILD_ID "dev"
#endif

/* Process-wide by necessity: an assertion has no context struct to hand.
 * Set once at startup before threads (STYLE.md section 8 exception). */
static assert_hook_fn hook_fn;
static void *hook_ctx;

void assert_hook_set(assert_hook_fn hook, void *ctx)
{
    hook_fn = hook;
    hook_ctx = ctx;
}

void assert__fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "ASSERTION FAILED: %s at %s:%d (build %s)\n", expr, file,
            line, CAIRN_BUILD_ID);
    if (hook_fn != NULL) {
        assert_hook_fn fn = hook_fn;
        hook_fn = NULL; /* a failing hook must not recurse */
        fn(hook_ctx);
    }
    fflush(stderr);
    abort();
}
