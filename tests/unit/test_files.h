/* test_files.h: file helpers shared by the C tests that make inputs for other tests or damaged copies of the
 * sample videos. Every test program is one translation unit, so these are static. */
#ifndef MVD_TEST_FILES_H
#define MVD_TEST_FILES_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "util.h"

/* Writes data to dir/name atomically; 0 or -1 (the reason on stderr). */
static inline int test_write_file(const char *dir, const char *name, const void *data, size_t n) {
    char path[512];
    mvd_err err;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (write_file_atomic(path, data, n, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    return 0;
}

/* Copies the first `fraction` of src's bytes to dst: a truncated video. */
static inline int test_truncate_copy(const char *src, const char *dst, double fraction) {
    FILE *f = fopen(src, "rb");
    if (!f) return -1;
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        fclose(f);
        return -1;
    }
    size_t keep = (size_t)((double)st.st_size * fraction);
    uint8_t *buf = xmalloc(keep);
    size_t got = fread(buf, 1, keep, f);
    fclose(f);
    mvd_err err;
    int rc = got == keep ? write_file_atomic(dst, buf, keep, &err) : -1;
    free(buf);
    return rc;
}

#endif
