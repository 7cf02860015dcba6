/* util.h: the small pieces every module shares: error reporting, checked allocation, logging, SHA-256,
 * atomic file replacement and path helpers.
 *
 * Error convention used across the project: a function that can fail returns 0 on success and -1 on
 * failure, after writing a one-line message into a caller-supplied mvd_err. The message names the file,
 * video, key or tensor concerned, so the caller can print it as is. */
#ifndef MVD_UTIL_H
#define MVD_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define MVD_VERSION "0.1.0"

typedef struct {
    char msg[1024];
} mvd_err;

/* Formats the message into err (if err is not NULL) and returns -1, so callers can `return mvd_fail(...)`. */
int mvd_fail(mvd_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefixes an existing message ("context: old message"); returns -1. */
int mvd_fail_ctx(mvd_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Aborts with file/line on allocation failure: running out of memory is not a recoverable input error. */
void *mvd_malloc(size_t n, const char *file, int line);
void *mvd_calloc(size_t count, size_t size, const char *file, int line);
#define xmalloc(n) mvd_malloc((n), __FILE__, __LINE__)
#define xcalloc(c, s) mvd_calloc((c), (s), __FILE__, __LINE__)
char *xstrdup(const char *s);

/* Logging to stderr with a tag; mvd_log_quiet silences info (tests). */
extern int mvd_log_quiet;
void mvd_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void mvd_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* SHA-256 (OpenSSL). sha256_hex writes 64 hex chars + NUL into hex[65]. */
typedef struct sha256_stream sha256_stream;
sha256_stream *sha256_begin(void);
void sha256_update(sha256_stream *s, const void *data, size_t n);
void sha256_end(sha256_stream *s, char hex[65]); /* also frees s */
void sha256_hex(const void *data, size_t n, char hex[65]);
int sha256_file(const char *path, char hex[65], mvd_err *err);

/* Joins root and rel with one '/', unless rel is absolute or root is NULL/empty. Caller frees. */
char *path_join(const char *root, const char *rel);

/* Atomic replacement: write to "<path>.tmp.<pid>", fsync, rename over path. */
int write_file_atomic(const char *path, const void *data, size_t n, mvd_err *err);
int rename_atomic(const char *tmp_path, const char *final_path, mvd_err *err);
int mkdir_p(const char *path, mvd_err *err);
int file_exists(const char *path);

/* Monotonic seconds, for throughput figures. */
double now_seconds(void);

#endif
