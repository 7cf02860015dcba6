/* safetensors.h: reading and writing safetensors files (8-byte little-endian header length, a JSON header
 * mapping tensor names to dtype, shape and byte offsets, then the raw little-endian data).
 *
 * Weights and checkpoints are untrusted input: st_open validates the whole header (lengths, dtypes, shapes,
 * offsets inside the data area, no overlaps past the end) before any tensor is read, so a bad file fails
 * with a message naming it and the offending tensor rather than causing a large or wild allocation. */
#ifndef MVD_SAFETENSORS_H
#define MVD_SAFETENSORS_H

#include <stdint.h>
#include <stdio.h>

#include "util.h"

#define ST_MAX_DIMS 8

typedef enum { ST_F32, ST_F16, ST_BF16, ST_F64, ST_I64, ST_I32, ST_U8, ST_BOOL } st_dtype;

typedef struct {
    char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    int64_t numel;
    uint64_t offset; /* from the start of the data area */
    uint64_t nbytes;
} st_tensor;

typedef struct {
    char *path;
    FILE *fp;
    uint64_t data_start; /* file offset of the data area */
    int64_t count;
    st_tensor *tensors;
    int64_t meta_count; /* "__metadata__" string pairs */
    char **meta_keys, **meta_values;
} st_file;

int st_open(st_file *f, const char *path, mvd_err *err);
void st_close(st_file *f);
const st_tensor *st_find(const st_file *f, const char *name);
const char *st_meta(const st_file *f, const char *key); /* NULL when absent */
const char *st_dtype_name(st_dtype d);
/* Reads a tensor converting F32/F16/BF16/F64 to fp32; dst must hold t->numel floats. */
int st_read_f32(st_file *f, const st_tensor *t, float *dst, mvd_err *err);
/* Reads raw bytes (any dtype); dst must hold t->nbytes. */
int st_read_raw(st_file *f, const st_tensor *t, void *dst, mvd_err *err);

/* Writer: collect tensors (pointers are borrowed until st_writer_save), then save atomically. */
typedef struct {
    int64_t count, cap;
    struct st_out {
        char *name;
        st_dtype dtype;
        int ndim;
        int64_t shape[ST_MAX_DIMS];
        const void *data;
        uint64_t nbytes;
    } *items;
    int64_t meta_count;
    char **meta_keys, **meta_values;
} st_writer;

void st_writer_init(st_writer *w);
void st_writer_add(st_writer *w, const char *name, st_dtype dtype, int ndim, const int64_t *shape, const void *data);
void st_writer_meta(st_writer *w, const char *key, const char *value);
int st_writer_save(st_writer *w, const char *path, mvd_err *err);
void st_writer_free(st_writer *w);

#endif
