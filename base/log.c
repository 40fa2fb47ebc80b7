/* log.c - single-line text or JSON log events. */
#include "base/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

/* Process-wide sink (see log.h). */
static enum log_level sink_level = LOG_INFO;
static enum log_format sink_format = LOG_FORMAT_TEXT;
static FILE *sink_out;

static const char *const level_names[] = {"debug", "info", "warn", "error",
                                          "fatal"};

void log_setup(enum log_level level, enum log_format format, FILE *out)
{
    sink_level = level;
    sink_format = format;
    sink_out = out;
}

int log_level_parse(const char *s, enum log_level *out)
{
    static const struct {
        const char *name;
        enum log_level level;
    } map[] = {{"debug", LOG_DEBUG}, {"info", LOG_INFO},
               {"warn", LOG_WARN},   {"warning", LOG_WARN},
               {"error", LOG_ERROR}, {"fatal", LOG_FATAL},
               {"panic", LOG_FATAL}, {"dpanic", LOG_FATAL}};
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (strcasecmp(s, map[i].name) == 0) {
            *out = map[i].level;
            return 0;
        }
    }
    return -22; /* -EINVAL */
}

int log_format_parse(const char *s, enum log_format *out)
{
    if (strcasecmp(s, "text") == 0 || strcasecmp(s, "console") == 0) {
        *out = LOG_FORMAT_TEXT;
        return 0;
    }
    if (strcasecmp(s, "json") == 0) {
        *out = LOG_FORMAT_JSON;
        return 0;
    }
    return -22;
}

int log_enabled(enum log_level level)
{
    return level >= sink_level;
}

/* Append s to dst[*len..cap) with JSON escaping; cuts at cap. */
static void json_escape(char *dst, size_t *len, size_t cap, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    for (; *s != '\0' && *len + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            dst[(*len)++] = '\\';
            dst[(*len)++] = (char)c;
        } else if (c < 0x20) {
            memcpy(dst + *len, "\\u00", 4);
            *len += 4;
            dst[(*len)++] = hex[c >> 4];
            dst[(*len)++] = hex[c & 15];
        } else {
            dst[(*len)++] = (char)c;
        }
    }
}

void log_write(enum log_level level, const char *component, const char *fmt,
               ...)
{
    char msg[LOG_LINE_MAX];
    char line[LOG_LINE_MAX + 256];
    char ts[128];
    struct timeval tv;
    struct tm tm;
    va_list ap;
    size_t len = 0;
    FILE *out = sink_out != NULL ? sink_out : stderr;

    if (!log_enabled(level)) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    for (char *p = msg; *p != '\0'; p++) {
        if (*p == '\n') {
            *p = ' '; /* one line per event, always */
        }
    }
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, (long)tv.tv_usec);
    if (sink_format == LOG_FORMAT_JSON) {
        len = (size_t)snprintf(line, sizeof(line),
                               "{\"ts\":\"%s\",\"level\":\"%s\",\"caller\":\"",
                               ts, level_names[level]);
        json_escape(line, &len, sizeof(line) - 4, component);
        memcpy(line + len, "\",\"msg\":\"", 9);
        len += 9;
        json_escape(line, &len, sizeof(line) - 4, msg);
        memcpy(line + len, "\"}\n", 3);
        len += 3;
    } else {
        int n = snprintf(line, sizeof(line), "%s %-5s %s: %s\n", ts,
                         level_names[level], component, msg);
        len = n < 0 ? 0 : (size_t)n;
        if (len >= sizeof(line)) {
            len = sizeof(line) - 1;
            line[len - 1] = '\n';
        }
    }
    fwrite(line, 1, len, out);
    fflush(out);
}

bool log_limit_pass(struct log_limit *l, long long now_ms,
                    unsigned long long *held)
{
    if (l->window_start_ms == 0 ||
        now_ms - l->window_start_ms >= LOG_LIMIT_WINDOW_MS ||
        now_ms < l->window_start_ms) {
        l->window_start_ms = now_ms > 0 ? now_ms : 1;
        l->in_window = 0;
    }
    if (l->in_window >= LOG_LIMIT_BURST) {
        l->held++;
        return false;
    }
    l->in_window++;
    *held = l->held;
    l->held = 0;
    return true;
}

static pthread_mutex_t limit_mu = PTHREAD_MUTEX_INITIALIZER;

bool log_limit_allow(struct log_limit *l, enum log_level level,
                     const char *component)
{
    struct timespec ts;
    unsigned long long held = 0;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    long long now_ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    pthread_mutex_lock(&limit_mu);
    bool pass = log_limit_pass(l, now_ms, &held);
    pthread_mutex_unlock(&limit_mu);
    if (pass && held > 0) {
        log_write(level, component,
                  "%llu lines like the next were not logged (at most %d "
                  "per %d s)",
                  held, LOG_LIMIT_BURST, LOG_LIMIT_WINDOW_MS / 1000);
    }
    return pass;
}
