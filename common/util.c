/* util.c: see util.h. */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int mvd_log_quiet = 0;

int mvd_fail(mvd_err *err, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int mvd_fail_ctx(mvd_err *err, const char *fmt, ...) {
    if (err) {
        char prefix[512], joined[sizeof prefix + sizeof err->msg + 2];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(prefix, sizeof prefix, fmt, ap);
        va_end(ap);
        snprintf(joined, sizeof joined, "%s: %s", prefix, err->msg);
        size_t n = strlen(joined);
        if (n >= sizeof err->msg) n = sizeof err->msg - 1;
        memcpy(err->msg, joined, n);
        err->msg[n] = '\0';
    }
    return -1;
}

void *mvd_malloc(size_t n, const char *file, int line) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "fatal: out of memory allocating %zu bytes at %s:%d\n", n, file, line);
        abort();
    }
    return p;
}

void *mvd_calloc(size_t count, size_t size, const char *file, int line) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) {
        fprintf(stderr, "fatal: out of memory allocating %zu x %zu bytes at %s:%d\n", count, size, file, line);
        abort();
    }
    return p;
}

char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = xmalloc(n);
    memcpy(p, s, n);
    return p;
}

static void log_line(const char *tag, const char *fmt, va_list ap) {
    fprintf(stderr, "%s", tag);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void mvd_info(const char *fmt, ...) {
    if (mvd_log_quiet) return;
    va_list ap;
    va_start(ap, fmt);
    log_line("", fmt, ap);
    va_end(ap);
}

void mvd_warn(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    log_line("warning: ", fmt, ap);
    va_end(ap);
}

struct sha256_stream {
    EVP_MD_CTX *ctx;
};

sha256_stream *sha256_begin(void) {
    sha256_stream *s = xmalloc(sizeof *s);
    s->ctx = EVP_MD_CTX_new();
    if (!s->ctx || EVP_DigestInit_ex(s->ctx, EVP_sha256(), NULL) != 1) {
        fprintf(stderr, "fatal: OpenSSL could not start a SHA-256 digest\n");
        abort();
    }
    return s;
}

void sha256_update(sha256_stream *s, const void *data, size_t n) {
    if (EVP_DigestUpdate(s->ctx, data, n) != 1) {
        fprintf(stderr, "fatal: OpenSSL SHA-256 update failed\n");
        abort();
    }
}

void sha256_end(sha256_stream *s, char hex[65]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_DigestFinal_ex(s->ctx, md, &len) != 1 || len != 32) {
        fprintf(stderr, "fatal: OpenSSL SHA-256 final failed\n");
        abort();
    }
    for (unsigned i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
    EVP_MD_CTX_free(s->ctx);
    free(s);
}

void sha256_hex(const void *data, size_t n, char hex[65]) {
    sha256_stream *s = sha256_begin();
    sha256_update(s, data, n);
    sha256_end(s, hex);
}

int sha256_file(const char *path, char hex[65], mvd_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return mvd_fail(err, "%s: cannot open: %s", path, strerror(errno));
    sha256_stream *s = sha256_begin();
    char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) sha256_update(s, buf, n);
    int bad = ferror(f);
    fclose(f);
    sha256_end(s, hex);
    if (bad) return mvd_fail(err, "%s: read error while hashing", path);
    return 0;
}

char *path_join(const char *root, const char *rel) {
    if (!root || !*root || rel[0] == '/') return xstrdup(rel);
    size_t a = strlen(root), b = strlen(rel);
    int slash = root[a - 1] != '/';
    char *p = xmalloc(a + b + 2);
    memcpy(p, root, a);
    if (slash) p[a] = '/';
    memcpy(p + a + slash, rel, b + 1);
    return p;
}

int write_file_atomic(const char *path, const void *data, size_t n, mvd_err *err) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return mvd_fail(err, "%s: cannot create: %s", tmp, strerror(errno));
    const char *p = data;
    size_t left = n;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            close(fd);
            unlink(tmp);
            return mvd_fail(err, "%s: write failed: %s", tmp, strerror(e));
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        return mvd_fail(err, "%s: fsync/close failed: %s", tmp, strerror(e));
    }
    return rename_atomic(tmp, path, err);
}

int rename_atomic(const char *tmp_path, const char *final_path, mvd_err *err) {
    if (rename(tmp_path, final_path) != 0) {
        int e = errno;
        unlink(tmp_path);
        return mvd_fail(err, "%s: cannot rename into place: %s", final_path, strerror(e));
    }
    return 0;
}

int mkdir_p(const char *path, mvd_err *err) {
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) return mvd_fail(err, "%s: bad directory path", path);
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char c = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return mvd_fail(err, "%s: cannot create directory: %s", buf, strerror(errno));
            buf[i] = c;
        }
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) return mvd_fail(err, "%s: not a directory", path);
    return 0;
}

int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
