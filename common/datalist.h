/* datalist.h: the list of videos a job works on, in the VideoMAE/MVD list format.
 *
 * One video per line, `path label`. The label is the LAST whitespace-separated field, so a path may contain
 * spaces (the reference splits on the first space and breaks on them). Blank lines and lines whose first
 * non-blank character is '#' are ignored. Pretraining ignores the label, but it is required, as in the
 * reference, so a list made for one tool works for the others. A video's index is its position among the
 * entries (comments and blanks not counted): clip sampling keys its random choices on that index. */
#ifndef MVD_DATALIST_H
#define MVD_DATALIST_H

#include <stdint.h>

#include "util.h"

typedef struct {
    char *path;  /* as written in the list (join it to a data root with path_join) */
    char *label; /* the last field, kept as text: pretraining never interprets it */
    int64_t line; /* 1-based line number in the list file, for messages */
} datalist_entry;

typedef struct {
    datalist_entry *entries;
    int64_t count;
} datalist;

/* Reads the whole list. On failure *out is left empty and err names `file:line` and the reason. */
int datalist_read(const char *path, datalist *out, mvd_err *err);
void datalist_free(datalist *list);

#endif
