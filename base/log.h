/*
 * log.h - one line per event, text or JSON lines, with levels.
 *
 * Does:     log_write() formats one event as a single line on the sink.
 * Owns:     the process-wide sink settings (level, format, FILE*), set at
 *           startup before threads start (STYLE.md section 8 exception: a
 *           log has one destination per process).
 * Threads:  log_write() may be called from any thread; each event is written
 *           with one fwrite under the stdio lock, so lines never interleave.
 * Errors:   a failed write is dropped silently (logging must not fail work).
 * Limits:   a line is cut at LOG_LINE_MAX bytes.
 * Not here: the Raft core never logs (it is pure); it returns trace events.
 */
#ifndef CAIRN_BASE_LOG_H
#define CAIRN_BASE_LOG_H

#include <stdbool.h>
#include <stdio.h>

enum log_level {
    LOG_DEBUG = 0,
    LOG_INFO = 1,
    LOG_WARN = 2,
    LOG_ERROR = 3,
    LOG_FATAL = 4,
};

enum log_format {
    LOG_FORMAT_TEXT = 0,
    LOG_FORMAT_JSON = 1,
};

#define LOG_LINE_MAX 4096

/* Configure the sink; out is borrowed for the life of the process. */
void log_setup(enum log_level level, enum log_format format, FILE *out);

/* Parse "debug|info|warn|error|fatal" (also "warning", "panic"); -EINVAL. */
int log_level_parse(const char *s, enum log_level *out);
int log_format_parse(const char *s, enum log_format *out);

int log_enabled(enum log_level level);

/* component is a short module name ("kv", "raft"); fmt is printf-style. In
 * JSON mode the message becomes the "msg" field, escaped. */
void log_write(enum log_level level, const char *component, const char *fmt,
               ...) __attribute__((format(printf, 3, 4)));

/* A call site that outside input can repeat at will (a refused request, a
 * stranger on the peer port) logs through LOGW_LIMITED/LOGE_LIMITED: at
 * most LOG_LIMIT_BURST lines per LOG_LIMIT_WINDOW_MS per call site. The
 * first line let through after lines were held back is preceded by a line
 * saying how many. Thread-safe (one mutex, taken only on these sites). */
#define LOG_LIMIT_BURST     10
#define LOG_LIMIT_WINDOW_MS 10000

struct log_limit {
    long long window_start_ms; /* 0: no line yet */
    unsigned in_window;        /* lines let through in this window */
    unsigned long long held;   /* lines held back since the last report */
};

/* True when a line may be written at now_ms (a monotonic clock); then
 * *held is how many lines were held back before it (to report), and the
 * count restarts. */
bool log_limit_pass(struct log_limit *l, long long now_ms,
                    unsigned long long *held);
/* log_limit_pass on CLOCK_MONOTONIC; writes the report line itself. */
bool log_limit_allow(struct log_limit *l, enum log_level level,
                     const char *component);

#define LOG_LIMITED_(level, comp, ...)                                         \
    do {                                                                       \
        static struct log_limit log_limit_site_;                               \
        if (log_enabled(level) &&                                              \
            log_limit_allow(&log_limit_site_, level, comp)) {                  \
            log_write(level, comp, __VA_ARGS__);                               \
        }                                                                      \
    } while (0)
#define LOGW_LIMITED(comp, ...) LOG_LIMITED_(LOG_WARN, comp, __VA_ARGS__)
#define LOGE_LIMITED(comp, ...) LOG_LIMITED_(LOG_ERROR, comp, __VA_ARGS__)

#define LOGD(comp, ...)                                                        \
    do {                                                                       \
        if (log_enabled(LOG_DEBUG)) {                                          \
            log_write(LOG_DEBUG, comp, __VA_ARGS__);                           \
        }                                                                      \
    } while (0)
#define LOGI(comp, ...) log_write(LOG_INFO, comp, __VA_ARGS__)
#define LOGW(comp, ...) log_write(LOG_WARN, comp, __VA_ARGS__)
#define LOGE(comp, ...) log_write(LOG_ERROR, comp, __VA_ARGS__)

#endif
