/* err.c - message texts for the error table in err.h. */
#include "base/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const messages[] = {
#define X(name, msg) msg,
    ERR_TABLE(X)
#undef X
};

static const char *const names[] = {
#define X(name, msg) #name,
    ERR_TABLE(X)
#undef X
};

const char *err_str(int code)
{
    if (code == 0) {
        return "ok";
    }
    if (err_is_ours(code)) {
        return messages[-code - ERR_BASE - 1];
    }
    if (code < 0 && code > -ERR_BASE) {
        return strerror(-code); /* glibc's table; never NULL */
    }
    return "cairn: unknown error";
}

const char *err_name(int code)
{
    if (!err_is_ours(code)) {
        return NULL;
    }
    return names[-code - ERR_BASE - 1];
}

void err_msg(char *msg, size_t msg_len, const char *fmt, ...)
{
    va_list ap;
    if (msg == NULL || msg_len == 0) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, msg_len, fmt, ap);
    va_end(ap);
}
