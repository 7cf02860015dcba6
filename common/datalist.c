/* datalist.c: parsing of list files (see datalist.h). */
#include "datalist.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Lines longer than this are refused: a list line is a path and a label, and a runaway line is a sign of a
 * binary or wrong file rather than a real path. */
#define DATALIST_MAX_LINE (64 * 1024)

static char *trim(char *s) {
    while (*s && isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
    return s;
}

static void append(datalist *list, int64_t *cap, datalist_entry e) {
    if (list->count == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        datalist_entry *grown = realloc(list->entries, (size_t)*cap * sizeof *grown);
        if (!grown) {
            fprintf(stderr, "fatal: out of memory growing the video list to %lld entries\n", (long long)*cap);
            abort();
        }
        list->entries = grown;
    }
    list->entries[list->count++] = e;
}

/* Splits a trimmed, non-empty line at its last run of whitespace into path and label. */
static int split_line(char *line, const char *file, int64_t lineno, datalist_entry *e, mvd_err *err) {
    char *last_space = NULL;
    for (char *c = line; *c; c++)
        if (isspace((unsigned char)*c)) last_space = c;
    if (!last_space)
        return mvd_fail(err, "%s:%lld: expected `path label`, found one field \"%.200s\"", file,
                        (long long)lineno, line);
    char *label = last_space + 1;
    *last_space = '\0';
    char *path = trim(line);
    if (!*path) return mvd_fail(err, "%s:%lld: the path is empty", file, (long long)lineno);
    e->path = xstrdup(path);
    e->label = xstrdup(label);
    e->line = lineno;
    return 0;
}

static int parse_stream(FILE *f, const char *file, datalist *out, mvd_err *err) {
    char *buf = NULL;
    size_t bufcap = 0;
    int64_t cap = 0, lineno = 0;
    ssize_t len;
    int rc = 0;
    errno = 0;
    while ((len = getline(&buf, &bufcap, f)) >= 0) {
        lineno++;
        if (len > DATALIST_MAX_LINE) {
            rc = mvd_fail(err, "%s:%lld: line longer than %d bytes", file, (long long)lineno, DATALIST_MAX_LINE);
            break;
        }
        if (memchr(buf, '\0', (size_t)len)) {
            rc = mvd_fail(err, "%s:%lld: NUL byte in line (not a text list?)", file, (long long)lineno);
            break;
        }
        char *line = buf;
        if (lineno == 1 && strncmp(line, "\xEF\xBB\xBF", 3) == 0) line += 3; /* a UTF-8 byte-order mark */
        line = trim(line);
        if (!*line || *line == '#') continue;
        datalist_entry e = {0};
        if ((rc = split_line(line, file, lineno, &e, err)) != 0) break;
        append(out, &cap, e);
    }
    if (rc == 0 && ferror(f)) rc = mvd_fail(err, "%s: read error: %s", file, strerror(errno));
    free(buf);
    return rc;
}

int datalist_read(const char *path, datalist *out, mvd_err *err) {
    out->entries = NULL;
    out->count = 0;
    FILE *f = fopen(path, "r");
    if (!f) return mvd_fail(err, "%s: cannot open list: %s", path, strerror(errno));
    int rc = parse_stream(f, path, out, err);
    if (fclose(f) != 0 && rc == 0) rc = mvd_fail(err, "%s: close failed: %s", path, strerror(errno));
    if (rc != 0) datalist_free(out);
    return rc;
}

void datalist_free(datalist *list) {
    for (int64_t i = 0; i < list->count; i++) {
        free(list->entries[i].path);
        free(list->entries[i].label);
    }
    free(list->entries);
    list->entries = NULL;
    list->count = 0;
}
