/* cache.c: writing and reading target cache shards with HDF5 (layout: schemas/cache-v1.md).
 *
 * Choices worth knowing:
 * - Every dataset has an unlimited first dimension and grows by one row per appended clip, so a shard needs no
 *   final shrink and a partly written .tmp file is still a valid HDF5 file (never read under the final name).
 * - Targets are chunked one clip per chunk. A clip at real size is 2.4 MB in fp16, beyond HDF5's default 1 MiB
 *   chunk cache, and each chunk is written once and read once, so both sides set the cache to zero bytes:
 *   chunks go straight through the filter pipeline, and reading memory stays one clip.
 * - fp16 conversion is done here (half.c, round to nearest even), never by HDF5's converter; the file type is
 *   IEEE half built the way h5py builds it, so h5py reads float16.
 * - /clips is not compressed, so plain HDF5 tools read clip specs without the zstd plugin.
 * - Public functions silence HDF5's automatic error printing while they run and put the innermost HDF5 error
 *   (a filter's reason, for example) into the mvd_err message instead. */
#include "cache.h"

#include <fcntl.h>
#include <hdf5.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "h5zstd.h"
#include "half.h"

#define CACHE_COLUMN_CHUNK_ROWS 1024
#define CACHE_STRING_MAX (64 * 1024) /* longest path or label accepted from a file */

/* ---- HDF5 error handling ---- */

typedef struct {
    H5E_auto2_t func;
    void *data;
} h5_quiet;

static h5_quiet quiet_begin(void) {
    h5_quiet q = {NULL, NULL};
    H5Eget_auto2(H5E_DEFAULT, &q.func, &q.data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    return q;
}

static void quiet_end(h5_quiet q) { H5Eset_auto2(H5E_DEFAULT, q.func, q.data); }

static herr_t innermost_error(unsigned n, const H5E_error2_t *e, void *data) {
    if (n == 0 && e->desc) snprintf((char *)data, 256, "%s", e->desc);
    return 0;
}

/* mvd_fail plus the innermost message of HDF5's error stack, which is then cleared. */
__attribute__((format(printf, 2, 3))) static int h5_fail(mvd_err *err, const char *fmt, ...) {
    char msg[700], detail[256] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, innermost_error, detail);
    H5Eclear2(H5E_DEFAULT);
    if (detail[0]) return mvd_fail(err, "%s (HDF5: %s)", msg, detail);
    return mvd_fail(err, "%s", msg);
}

static void close_id(hid_t *id, herr_t (*closer)(hid_t)) {
    if (*id >= 0) closer(*id);
    *id = H5I_INVALID_HID;
}

/* ---- the /clips columns ---- */

typedef enum { COL_I64, COL_I32, COL_SHA256, COL_VSTRING } column_kind;
#define WIDTH_FRAMES (-1) /* one value per frame: meta.num_frames */

enum {
    COL_VIDEO_INDEX,
    COL_VIEW,
    COL_NUM_FRAMES,
    COL_START,
    COL_FRAME_INDEX,
    COL_PTS,
    COL_TIME_BASE,
    COL_REPEATED,
    COL_CROP,
    COL_VIDEO_FRAMES,
    COL_PIXEL_SHA256,
    COL_PATH,
    COL_LABEL,
    COL_COUNT
};

static const struct {
    const char *name;
    column_kind kind;
    int width; /* values per row; 1 means a 1-D dataset [clips] */
} columns[COL_COUNT] = {
    [COL_VIDEO_INDEX] = {"video_index", COL_I64, 1},
    [COL_VIEW] = {"view", COL_I32, 1},
    [COL_NUM_FRAMES] = {"num_frames", COL_I32, 1},
    [COL_START] = {"start", COL_I64, 1},
    [COL_FRAME_INDEX] = {"frame_index", COL_I64, WIDTH_FRAMES},
    [COL_PTS] = {"pts", COL_I64, WIDTH_FRAMES},
    [COL_TIME_BASE] = {"time_base", COL_I32, 2},
    [COL_REPEATED] = {"repeated", COL_I32, 1},
    [COL_CROP] = {"crop", COL_I32, 4},
    [COL_VIDEO_FRAMES] = {"video_frames", COL_I64, 1},
    [COL_PIXEL_SHA256] = {"pixel_sha256", COL_SHA256, 1},
    [COL_PATH] = {"path", COL_VSTRING, 1},
    [COL_LABEL] = {"label", COL_VSTRING, 1},
};

static hsize_t column_width(int col, const cache_meta *m) {
    return columns[col].width == WIDTH_FRAMES ? (hsize_t)m->num_frames : (hsize_t)columns[col].width;
}

static int column_rank(int col) { return columns[col].width == 1 ? 1 : 2; }

/* The integer values of one column for one clip. */
static void column_get(const cache_clip *c, int col, int64_t *v) {
    const clip_spec *s = &c->spec;
    switch (col) {
    case COL_VIDEO_INDEX: v[0] = s->video_index; break;
    case COL_VIEW: v[0] = s->view; break;
    case COL_NUM_FRAMES: v[0] = s->num_frames; break;
    case COL_START: v[0] = s->start; break;
    case COL_FRAME_INDEX: memcpy(v, s->frame_index, sizeof s->frame_index); break;
    case COL_PTS: memcpy(v, s->pts, sizeof s->pts); break;
    case COL_TIME_BASE: v[0] = s->time_base_num, v[1] = s->time_base_den; break;
    case COL_REPEATED: v[0] = s->repeated; break;
    case COL_CROP: v[0] = s->crop.x, v[1] = s->crop.y, v[2] = s->crop.w, v[3] = s->crop.h; break;
    case COL_VIDEO_FRAMES: v[0] = c->video_frames; break;
    }
}

static int to_int(int64_t v, int *out, const char *name, mvd_err *err) {
    if (v < -2147483647 - 1 || v > 2147483647)
        return mvd_fail(err, "clips/%s value %lld out of range", name, (long long)v);
    *out = (int)v;
    return 0;
}

static int column_set(cache_clip *c, int col, const int64_t *v, mvd_err *err) {
    clip_spec *s = &c->spec;
    const char *n = columns[col].name;
    switch (col) {
    case COL_VIDEO_INDEX: s->video_index = v[0]; return 0;
    case COL_VIEW: return to_int(v[0], &s->view, n, err);
    case COL_NUM_FRAMES: return to_int(v[0], &s->num_frames, n, err);
    case COL_START: s->start = v[0]; return 0;
    case COL_FRAME_INDEX: memcpy(s->frame_index, v, sizeof s->frame_index); return 0;
    case COL_PTS: memcpy(s->pts, v, sizeof s->pts); return 0;
    case COL_TIME_BASE: return to_int(v[0], &s->time_base_num, n, err) || to_int(v[1], &s->time_base_den, n, err);
    case COL_REPEATED: return to_int(v[0], &s->repeated, n, err);
    case COL_CROP:
        return to_int(v[0], &s->crop.x, n, err) || to_int(v[1], &s->crop.y, n, err) ||
               to_int(v[2], &s->crop.w, n, err) || to_int(v[3], &s->crop.h, n, err);
    case COL_VIDEO_FRAMES: c->video_frames = v[0]; return 0;
    }
    return mvd_fail(err, "clips/%s: not an integer column", n);
}

/* ---- datatypes ---- */

/* IEEE binary16, little-endian, built exactly as h5py builds it so h5py maps it to numpy float16. */
static hid_t make_half_type(void) {
    hid_t t = H5Tcopy(H5T_IEEE_F32LE);
    if (t < 0) return t;
    if (H5Tset_fields(t, 15, 10, 5, 0, 10) < 0 || H5Tset_size(t, 2) < 0 || H5Tset_ebias(t, 15) < 0) {
        H5Tclose(t);
        return H5I_INVALID_HID;
    }
    return t;
}

static hid_t make_string_type(int variable) {
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0) return t;
    herr_t rc = variable ? H5Tset_size(t, H5T_VARIABLE) : H5Tset_size(t, 64);
    if (rc < 0 || H5Tset_cset(t, variable ? H5T_CSET_UTF8 : H5T_CSET_ASCII) < 0 ||
        H5Tset_strpad(t, variable ? H5T_STR_NULLTERM : H5T_STR_NULLPAD) < 0) {
        H5Tclose(t);
        return H5I_INVALID_HID;
    }
    return t;
}

/* The file type of a column (a new id for strings, to close; a predefined one otherwise). */
static hid_t column_file_type(int col) {
    switch (columns[col].kind) {
    case COL_I64: return H5T_STD_I64LE;
    case COL_I32: return H5T_STD_I32LE;
    case COL_SHA256: return make_string_type(0);
    case COL_VSTRING: return make_string_type(1);
    }
    return H5I_INVALID_HID;
}

static int column_type_is_owned(int col) { return columns[col].kind == COL_SHA256 || columns[col].kind == COL_VSTRING; }

/* ---- small HDF5 helpers ---- */

/* Creates a chunked dataset [0, inner...] growing along its first dimension; with zstd_level (not NULL) it is
 * filtered shuffle + zstd and bypasses the chunk cache. */
static hid_t create_growing(hid_t loc, const char *name, hid_t type, int rank, const hsize_t *inner,
                            const hsize_t *chunk, const int *zstd_level, mvd_err *err) {
    hsize_t dims[3] = {0, 0, 0}, maxdims[3] = {H5S_UNLIMITED, 0, 0};
    for (int i = 1; i < rank; i++) dims[i] = maxdims[i] = inner[i - 1];
    hid_t space = H5Screate_simple(rank, dims, maxdims);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
    hid_t ds = H5I_INVALID_HID;
    int ok = space >= 0 && dcpl >= 0 && dapl >= 0 && H5Pset_chunk(dcpl, rank, chunk) >= 0;
    /* Target chunks are always written whole: filling them first would be wasted work. */
    if (ok && zstd_level)
        ok = H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER) >= 0 && H5Pset_shuffle(dcpl) >= 0 &&
             h5zstd_set_filter(dcpl, *zstd_level, err) == 0 && H5Pset_chunk_cache(dapl, 521, 0, 1.0) >= 0;
    if (ok) ds = H5Dcreate2(loc, name, type, space, H5P_DEFAULT, dcpl, dapl);
    if (ds < 0) h5_fail(err, "cannot create dataset %s", name);
    close_id(&space, H5Sclose);
    close_id(&dcpl, H5Pclose);
    close_id(&dapl, H5Pclose);
    return ds;
}

/* Grows ds to `row + 1` rows and writes buf (memtype) into that row. */
static int write_row(hid_t ds, hsize_t row, hid_t memtype, const void *buf, const char *name, mvd_err *err) {
    hid_t fspace = H5Dget_space(ds), mspace = H5I_INVALID_HID;
    hsize_t dims[3], start[3] = {row, 0, 0}, count[3];
    int rank = fspace >= 0 ? H5Sget_simple_extent_dims(fspace, dims, NULL) : -1;
    close_id(&fspace, H5Sclose);
    if (rank < 1 || rank > 3) return h5_fail(err, "%s: cannot read its shape", name);
    dims[0] = row + 1;
    memcpy(count, dims, sizeof dims);
    count[0] = 1;
    int ok = H5Dset_extent(ds, dims) >= 0 && (fspace = H5Dget_space(ds)) >= 0 &&
             H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL) >= 0 &&
             (mspace = H5Screate_simple(rank, count, NULL)) >= 0 &&
             H5Dwrite(ds, memtype, mspace, fspace, H5P_DEFAULT, buf) >= 0;
    /* the message first: any later HDF5 call clears the error stack that says why */
    int rc = ok ? 0 : h5_fail(err, "%s: cannot write row %llu", name, (unsigned long long)row);
    close_id(&fspace, H5Sclose);
    close_id(&mspace, H5Sclose);
    return rc;
}

/* Reads row `row` of ds into buf (memtype). */
static int read_row(hid_t ds, hsize_t row, hid_t memtype, void *buf, const char *name, mvd_err *err) {
    hid_t fspace = H5Dget_space(ds), mspace = H5I_INVALID_HID;
    hsize_t dims[3], start[3] = {row, 0, 0};
    int rank = fspace >= 0 ? H5Sget_simple_extent_dims(fspace, dims, NULL) : -1;
    int ok = rank >= 1 && rank <= 3 && row < dims[0];
    dims[0] = 1;
    ok = ok && H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, dims, NULL) >= 0 &&
         (mspace = H5Screate_simple(rank, dims, NULL)) >= 0 &&
         H5Dread(ds, memtype, mspace, fspace, H5P_DEFAULT, buf) >= 0;
    int rc = ok ? 0 : h5_fail(err, "%s: cannot read row %llu", name, (unsigned long long)row);
    close_id(&fspace, H5Sclose);
    close_id(&mspace, H5Sclose);
    return rc;
}

/* ---- metadata attributes ---- */

static int write_attr(hid_t loc, const char *name, hid_t ftype, hid_t mtype, int count, const void *buf, mvd_err *err) {
    hsize_t dims[1] = {(hsize_t)count};
    hid_t space = count > 1 ? H5Screate_simple(1, dims, NULL) : H5Screate(H5S_SCALAR);
    hid_t attr = space >= 0 ? H5Acreate2(loc, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT) : H5I_INVALID_HID;
    int rc = attr >= 0 && H5Awrite(attr, mtype, buf) >= 0 ? 0 : h5_fail(err, "cannot write attribute %s", name);
    close_id(&attr, H5Aclose);
    close_id(&space, H5Sclose);
    return rc;
}

static int write_string_attr(hid_t loc, const char *name, const char *value, mvd_err *err) {
    hid_t t = make_string_type(1);
    int rc = t >= 0 ? write_attr(loc, name, t, t, 1, &value, err) : h5_fail(err, "cannot make a string type");
    close_id(&t, H5Tclose);
    return rc;
}

static int write_int_attr(hid_t loc, const char *name, int64_t v, mvd_err *err) {
    return write_attr(loc, name, H5T_STD_I64LE, H5T_NATIVE_INT64, 1, &v, err);
}

static int write_meta_attrs(hid_t file, const cache_meta *m, mvd_err *err) {
    size_t n;
    const cache_field *fs = cache_meta_fields(&n);
    for (size_t i = 0; i < n; i++) {
        const char *p = (const char *)m + fs[i].offset;
        int rc = 0;
        switch (fs[i].kind) {
        case CACHE_FIELD_INT: rc = write_int_attr(file, fs[i].name, *(const int *)p, err); break;
        case CACHE_FIELD_U64: rc = write_attr(file, fs[i].name, H5T_STD_U64LE, H5T_NATIVE_UINT64, 1, p, err); break;
        case CACHE_FIELD_DOUBLES:
            rc = write_attr(file, fs[i].name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, (int)fs[i].count, p, err);
            break;
        case CACHE_FIELD_STRING: rc = write_string_attr(file, fs[i].name, p, err); break;
        }
        if (rc) return -1;
    }
    cJSON *json = cache_meta_to_json(m);
    char *text = json ? cJSON_PrintUnformatted(json) : NULL;
    int rc = text ? write_string_attr(file, "metadata_json", text, err) : mvd_fail(err, "cannot format metadata JSON");
    free(text);
    cJSON_Delete(json);
    return rc;
}

/* Opens attribute `name`, checking that it exists with the given type class and `count` values
 * (1 means a scalar). */
static hid_t open_attr_checked(hid_t loc, const char *name, H5T_class_t cls, int count, mvd_err *err) {
    htri_t exists = H5Aexists(loc, name);
    if (exists <= 0) {
        if (exists < 0) return h5_fail(err, "attribute %s: cannot be checked", name);
        return mvd_fail(err, "attribute %s is missing", name);
    }
    hid_t attr = H5Aopen(loc, name, H5P_DEFAULT);
    hid_t type = attr >= 0 ? H5Aget_type(attr) : H5I_INVALID_HID;
    hid_t space = attr >= 0 ? H5Aget_space(attr) : H5I_INVALID_HID;
    int ok = type >= 0 && space >= 0 && H5Tget_class(type) == cls;
    if (ok && count == 1) ok = H5Sget_simple_extent_type(space) == H5S_SCALAR;
    if (ok && count > 1) {
        hsize_t dims[1];
        ok = H5Sget_simple_extent_ndims(space) == 1 && H5Sget_simple_extent_dims(space, dims, NULL) == 1 &&
             dims[0] == (hsize_t)count;
    }
    close_id(&type, H5Tclose);
    close_id(&space, H5Sclose);
    if (!ok) {
        close_id(&attr, H5Aclose);
        return mvd_fail(err, "attribute %s has the wrong type or shape", name);
    }
    return attr;
}

/* Reads a string attribute (variable or fixed length) into buf[cap]. */
static int read_string_attr(hid_t loc, const char *name, char *buf, size_t cap, mvd_err *err) {
    hid_t attr = open_attr_checked(loc, name, H5T_STRING, 1, err);
    if (attr < 0) return -1;
    hid_t ftype = H5Aget_type(attr), mtype = H5I_INVALID_HID;
    htri_t variable = ftype >= 0 ? H5Tis_variable_str(ftype) : -1;
    size_t fixed = ftype >= 0 && variable == 0 ? H5Tget_size(ftype) : 0;
    int rc = -1;
    if (variable > 0) {
        char *value = NULL;
        mtype = make_string_type(1);
        if (mtype >= 0 && H5Aread(attr, mtype, &value) >= 0 && value) {
            if (strlen(value) < cap) {
                memcpy(buf, value, strlen(value) + 1);
                rc = 0;
            } else {
                rc = mvd_fail(err, "attribute %s is longer than %zu bytes", name, cap - 1);
            }
        } else {
            rc = h5_fail(err, "attribute %s: cannot read", name);
        }
        if (value) H5free_memory(value);
    } else if (variable == 0 && fixed > 0 && fixed < cap) {
        mtype = H5Tcopy(ftype);
        memset(buf, 0, cap);
        rc = mtype >= 0 && H5Aread(attr, mtype, buf) >= 0 ? 0 : h5_fail(err, "attribute %s: cannot read", name);
        buf[fixed] = '\0';
    } else {
        rc = mvd_fail(err, "attribute %s: unusable string type", name);
    }
    close_id(&mtype, H5Tclose);
    close_id(&ftype, H5Tclose);
    close_id(&attr, H5Aclose);
    return rc;
}

static int read_number_attr(hid_t loc, const char *name, H5T_class_t cls, hid_t mtype, int count, void *buf,
                            mvd_err *err) {
    hid_t attr = open_attr_checked(loc, name, cls, count, err);
    if (attr < 0) return -1;
    int rc = H5Aread(attr, mtype, buf) >= 0 ? 0 : h5_fail(err, "attribute %s: cannot read", name);
    H5Aclose(attr);
    return rc;
}

static int read_int_attr(hid_t loc, const char *name, int64_t *v, mvd_err *err) {
    return read_number_attr(loc, name, H5T_INTEGER, H5T_NATIVE_INT64, 1, v, err);
}

static int read_meta_field(hid_t file, const cache_field *f, cache_meta *m, mvd_err *err) {
    char *p = (char *)m + f->offset;
    int64_t v;
    switch (f->kind) {
    case CACHE_FIELD_INT:
        if (read_int_attr(file, f->name, &v, err)) return -1;
        if (v < -2147483647 - 1 || v > 2147483647) return mvd_fail(err, "attribute %s out of range", f->name);
        *(int *)p = (int)v;
        return 0;
    case CACHE_FIELD_U64: return read_number_attr(file, f->name, H5T_INTEGER, H5T_NATIVE_UINT64, 1, p, err);
    case CACHE_FIELD_DOUBLES:
        return read_number_attr(file, f->name, H5T_FLOAT, H5T_NATIVE_DOUBLE, (int)f->count, p, err);
    case CACHE_FIELD_STRING: return read_string_attr(file, f->name, p, f->count, err);
    }
    return mvd_fail(err, "attribute %s: unknown field kind", f->name);
}

/* Reads and validates the metadata; format name and version are checked first, for a clear message. */
static int read_meta_attrs(hid_t file, cache_meta *m, mvd_err *err) {
    size_t n;
    const cache_field *fs = cache_meta_fields(&n);
    memset(m, 0, sizeof *m);
    if (read_meta_field(file, &fs[0], m, err) || read_meta_field(file, &fs[1], m, err)) return -1;
    if (strcmp(m->format, CACHE_FORMAT_NAME) != 0)
        return mvd_fail(err, "not a target cache: format is '%s', expected '%s'", m->format, CACHE_FORMAT_NAME);
    if (m->format_version != CACHE_FORMAT_VERSION)
        return mvd_fail(err, "cache format version %d is not supported (this build reads version %d)",
                        m->format_version, CACHE_FORMAT_VERSION);
    for (size_t i = 2; i < n; i++)
        if (read_meta_field(file, &fs[i], m, err)) return -1;
    return cache_meta_validate(m, err);
}

/* ---- writer ---- */

struct cache_shard_writer {
    cache_meta meta;
    char *tmp_path, *final_path;
    char name[CACHE_SHARD_NAME_MAX];
    hid_t file;
    hid_t column[COL_COUNT];
    hid_t image, video; /* /targets/image, /targets/video */
    hid_t target_type;  /* file (and memory) type of the targets */
    hid_t sha_type, vstring_type;
    int64_t clips, first_video_index, last_video_index;
    void *scratch; /* one clip's target in storage form: tokens x max(D) x element size */
};

void cache_shard_name(int shard_index, char name[CACHE_SHARD_NAME_MAX]) {
    snprintf(name, CACHE_SHARD_NAME_MAX, "shard-%05d.h5", shard_index);
}

static void writer_close_ids(cache_shard_writer *w) {
    for (int c = 0; c < COL_COUNT; c++) close_id(&w->column[c], H5Dclose);
    close_id(&w->image, H5Dclose);
    close_id(&w->video, H5Dclose);
    close_id(&w->target_type, H5Tclose);
    close_id(&w->sha_type, H5Tclose);
    close_id(&w->vstring_type, H5Tclose);
}

static void writer_free(cache_shard_writer *w) {
    free(w->tmp_path);
    free(w->final_path);
    free(w->scratch);
    free(w);
}

static int create_columns(cache_shard_writer *w, hid_t group, mvd_err *err) {
    hsize_t rows = w->meta.shard_size < CACHE_COLUMN_CHUNK_ROWS ? (hsize_t)w->meta.shard_size : CACHE_COLUMN_CHUNK_ROWS;
    for (int c = 0; c < COL_COUNT; c++) {
        hsize_t inner[1] = {column_width(c, &w->meta)}, chunk[2] = {rows, inner[0]};
        hid_t type = column_file_type(c);
        if (type < 0) return h5_fail(err, "cannot make the type of clips/%s", columns[c].name);
        w->column[c] = create_growing(group, columns[c].name, type, column_rank(c), inner, chunk, NULL, err);
        if (column_type_is_owned(c)) H5Tclose(type);
        if (w->column[c] < 0) return -1;
    }
    return 0;
}

static int create_targets(cache_shard_writer *w, hid_t group, mvd_err *err) {
    const cache_meta *m = &w->meta;
    hsize_t img[2] = {(hsize_t)m->tokens, (hsize_t)m->image.feature_dim};
    hsize_t vid[2] = {(hsize_t)m->tokens, (hsize_t)m->video.feature_dim};
    hsize_t img_chunk[3] = {1, img[0], img[1]}, vid_chunk[3] = {1, vid[0], vid[1]};
    w->image = create_growing(group, "image", w->target_type, 3, img, img_chunk, &m->zstd_level, err);
    if (w->image < 0) return -1;
    w->video = create_growing(group, "video", w->target_type, 3, vid, vid_chunk, &m->zstd_level, err);
    return w->video < 0 ? -1 : 0;
}

static int writer_create_file(cache_shard_writer *w, mvd_err *err) {
    int is_f32 = cache_meta_element_size(&w->meta) == 4;
    w->target_type = is_f32 ? H5Tcopy(H5T_IEEE_F32LE) : make_half_type();
    w->sha_type = make_string_type(0);
    w->vstring_type = make_string_type(1);
    if (w->target_type < 0 || w->sha_type < 0 || w->vstring_type < 0) return h5_fail(err, "cannot make datatypes");
    w->file = H5Fcreate(w->tmp_path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (w->file < 0) return h5_fail(err, "%s: cannot create", w->tmp_path);
    if (write_meta_attrs(w->file, &w->meta, err)) return mvd_fail_ctx(err, "%s", w->tmp_path);
    hid_t clips = H5Gcreate2(w->file, "clips", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t targets = H5Gcreate2(w->file, "targets", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int rc = clips >= 0 && targets >= 0 ? 0 : h5_fail(err, "cannot create groups");
    if (rc == 0) rc = create_columns(w, clips, err);
    if (rc == 0) rc = create_targets(w, targets, err);
    close_id(&clips, H5Gclose);
    close_id(&targets, H5Gclose);
    return rc ? mvd_fail_ctx(err, "%s", w->tmp_path) : 0;
}

static int writer_open_impl(cache_shard_writer **out, const char *dir, int shard_index, const cache_meta *meta,
                            mvd_err *err) {
    *out = NULL;
    if (shard_index < 0 || shard_index > 99999) return mvd_fail(err, "shard index %d out of range", shard_index);
    if (cache_meta_validate(meta, err)) return mvd_fail_ctx(err, "cannot write a shard in %s", dir);
    if (h5zstd_register(err)) return -1;
    cache_shard_writer *w = xcalloc(1, sizeof *w);
    w->meta = *meta;
    w->file = w->image = w->video = w->target_type = w->sha_type = w->vstring_type = H5I_INVALID_HID;
    for (int c = 0; c < COL_COUNT; c++) w->column[c] = H5I_INVALID_HID;
    w->first_video_index = w->last_video_index = -1;
    cache_shard_name(shard_index, w->name);
    w->final_path = path_join(dir, w->name);
    w->tmp_path = xmalloc(strlen(w->final_path) + 5);
    sprintf(w->tmp_path, "%s.tmp", w->final_path);
    int max_dim = meta->image.feature_dim > meta->video.feature_dim ? meta->image.feature_dim : meta->video.feature_dim;
    w->scratch = xmalloc((size_t)meta->tokens * (size_t)max_dim * cache_meta_element_size(meta));
    if (writer_create_file(w, err)) {
        cache_shard_writer_abort(w);
        return -1;
    }
    *out = w;
    return 0;
}

int cache_shard_writer_open(cache_shard_writer **out, const char *dir, int shard_index, const cache_meta *meta,
                            mvd_err *err) {
    h5_quiet q = quiet_begin();
    int rc = writer_open_impl(out, dir, shard_index, meta, err);
    quiet_end(q);
    return rc;
}

static int check_clip(const cache_shard_writer *w, const cache_clip *c, mvd_err *err) {
    const clip_spec *s = &c->spec;
    if (w->clips >= w->meta.shard_size)
        return mvd_fail(err, "%s: shard is full (%d clips)", w->tmp_path, w->meta.shard_size);
    if (!c->path || !c->label) return mvd_fail(err, "%s: clip without a path or label", w->tmp_path);
    if (s->num_frames != w->meta.num_frames)
        return mvd_fail(err, "%s: clip of %s has %d frames, the cache %d", w->tmp_path, c->path, s->num_frames,
                        w->meta.num_frames);
    if (s->view < 0 || s->view >= w->meta.views)
        return mvd_fail(err, "%s: clip of %s has view %d of %d", w->tmp_path, c->path, s->view, w->meta.views);
    if (!cache_is_sha256_hex(s->pixel_sha256))
        return mvd_fail(err, "%s: clip of %s has no valid pixel_sha256", w->tmp_path, c->path);
    return 0;
}

static int append_columns(cache_shard_writer *w, const cache_clip *c, mvd_err *err) {
    hsize_t row = (hsize_t)w->clips;
    for (int col = 0; col < COL_COUNT; col++) {
        int rc;
        if (columns[col].kind == COL_SHA256) {
            rc = write_row(w->column[col], row, w->sha_type, c->spec.pixel_sha256, "clips/pixel_sha256", err);
        } else if (columns[col].kind == COL_VSTRING) {
            const char *s = col == COL_PATH ? c->path : c->label;
            rc = write_row(w->column[col], row, w->vstring_type, &s, columns[col].name, err);
        } else {
            int64_t v[CLIP_MAX_FRAMES];
            column_get(c, col, v);
            rc = write_row(w->column[col], row, H5T_NATIVE_INT64, v, columns[col].name, err);
        }
        if (rc) return -1;
    }
    return 0;
}

static int append_target(cache_shard_writer *w, hid_t ds, const float *target, int dim, const char *name,
                         mvd_err *err) {
    size_t n = (size_t)w->meta.tokens * (size_t)dim;
    const void *buf = target;
    if (cache_meta_element_size(&w->meta) == 2) {
        half_from_float_array(w->scratch, target, n);
        buf = w->scratch;
    }
    return write_row(ds, (hsize_t)w->clips, w->target_type, buf, name, err);
}

static int writer_append_impl(cache_shard_writer *w, const cache_clip *c, const float *image, const float *video,
                              mvd_err *err) {
    if (check_clip(w, c, err)) return -1;
    if (append_columns(w, c, err) ||
        append_target(w, w->image, image, w->meta.image.feature_dim, "targets/image", err) ||
        append_target(w, w->video, video, w->meta.video.feature_dim, "targets/video", err))
        return mvd_fail_ctx(err, "%s: clip of %s", w->tmp_path, c->path);
    if (w->clips == 0) w->first_video_index = c->spec.video_index;
    w->last_video_index = c->spec.video_index;
    w->clips++;
    return 0;
}

int cache_shard_writer_append(cache_shard_writer *w, const cache_clip *clip, const float *image_target,
                              const float *video_target, mvd_err *err) {
    h5_quiet q = quiet_begin();
    int rc = writer_append_impl(w, clip, image_target, video_target, err);
    quiet_end(q);
    return rc;
}

int64_t cache_shard_writer_clips(const cache_shard_writer *w) { return w->clips; }

static int fsync_path(const char *path, mvd_err *err) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return mvd_fail(err, "%s: cannot open to sync", path);
    int rc = fsync(fd);
    close(fd);
    return rc == 0 ? 0 : mvd_fail(err, "%s: fsync failed", path);
}

static int writer_finish_impl(cache_shard_writer *w, cache_shard_info *info, mvd_err *err) {
    if (write_int_attr(w->file, "num_clips", w->clips, err)) return mvd_fail_ctx(err, "%s", w->tmp_path);
    writer_close_ids(w);
    herr_t closed = H5Fclose(w->file);
    w->file = H5I_INVALID_HID;
    if (closed < 0) return h5_fail(err, "%s: cannot close", w->tmp_path);
    if (fsync_path(w->tmp_path, err) || rename_atomic(w->tmp_path, w->final_path, err)) return -1;
    if (info) {
        memset(info, 0, sizeof *info);
        snprintf(info->file, sizeof info->file, "%s", w->name);
        info->clips = w->clips;
        info->first_video_index = w->first_video_index;
        info->last_video_index = w->last_video_index;
    }
    return 0;
}

int cache_shard_writer_finish(cache_shard_writer *w, cache_shard_info *info, mvd_err *err) {
    h5_quiet q = quiet_begin();
    int rc = writer_finish_impl(w, info, err);
    quiet_end(q);
    if (rc) {
        cache_shard_writer_abort(w);
        return -1;
    }
    writer_free(w);
    return 0;
}

void cache_shard_writer_abort(cache_shard_writer *w) {
    if (!w) return;
    h5_quiet q = quiet_begin();
    writer_close_ids(w);
    close_id(&w->file, H5Fclose);
    H5Eclear2(H5E_DEFAULT);
    quiet_end(q);
    unlink(w->tmp_path);
    writer_free(w);
}

/* ---- reader ---- */

struct cache_shard_reader {
    char *path;
    cache_meta meta;
    int64_t clips;
    hid_t file;
    hid_t column[COL_COUNT];
    hid_t image, video;
    hid_t target_type, sha_type, vstring_type;
    void *scratch; /* one clip's fp16 target (fp16 shards only) */
};

static void reader_close_ids(cache_shard_reader *r) {
    for (int c = 0; c < COL_COUNT; c++) close_id(&r->column[c], H5Dclose);
    close_id(&r->image, H5Dclose);
    close_id(&r->video, H5Dclose);
    close_id(&r->target_type, H5Tclose);
    close_id(&r->sha_type, H5Tclose);
    close_id(&r->vstring_type, H5Tclose);
    close_id(&r->file, H5Fclose);
}

/* Opens dataset `name`, checking rank and dims exactly. */
static hid_t open_dataset_checked(hid_t file, const char *name, int rank, const hsize_t *want, hid_t dapl,
                                  mvd_err *err) {
    htri_t exists = H5Lexists(file, name, H5P_DEFAULT);
    if (exists <= 0)
        return exists < 0 ? h5_fail(err, "dataset %s: cannot be checked", name)
                          : mvd_fail(err, "dataset %s is missing", name);
    hid_t ds = H5Dopen2(file, name, dapl);
    if (ds < 0) return h5_fail(err, "dataset %s: cannot open", name);
    hid_t space = H5Dget_space(ds);
    hsize_t dims[H5S_MAX_RANK];
    int got = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    int ok = got == rank && H5Sget_simple_extent_dims(space, dims, NULL) == rank;
    for (int i = 0; ok && i < rank; i++) ok = dims[i] == want[i];
    close_id(&space, H5Sclose);
    if (ok) return ds;
    H5Dclose(ds);
    if (got != rank) return mvd_fail(err, "dataset %s has rank %d, expected %d", name, got, rank);
    char have_s[96] = "", want_s[96] = "";
    for (int i = 0; i < rank; i++) {
        snprintf(have_s + strlen(have_s), sizeof have_s - strlen(have_s), "%s%llu", i ? " x " : "",
                 (unsigned long long)dims[i]);
        snprintf(want_s + strlen(want_s), sizeof want_s - strlen(want_s), "%s%llu", i ? " x " : "",
                 (unsigned long long)want[i]);
    }
    return mvd_fail(err, "dataset %s has shape %s, expected %s", name, have_s, want_s);
}

static int column_type_ok(int col, hid_t type) {
    switch (columns[col].kind) {
    case COL_I64:
    case COL_I32: return H5Tget_class(type) == H5T_INTEGER;
    case COL_SHA256:
        return H5Tget_class(type) == H5T_STRING && H5Tis_variable_str(type) == 0 && H5Tget_size(type) == 64;
    case COL_VSTRING: return H5Tget_class(type) == H5T_STRING && H5Tis_variable_str(type) > 0;
    }
    return 0;
}

static int open_columns(cache_shard_reader *r, mvd_err *err) {
    for (int c = 0; c < COL_COUNT; c++) {
        char name[64];
        snprintf(name, sizeof name, "clips/%s", columns[c].name);
        hsize_t want[2] = {(hsize_t)r->clips, column_width(c, &r->meta)};
        r->column[c] = open_dataset_checked(r->file, name, column_rank(c), want, H5P_DEFAULT, err);
        if (r->column[c] < 0) return -1;
        hid_t type = H5Dget_type(r->column[c]);
        int ok = type >= 0 && column_type_ok(c, type);
        close_id(&type, H5Tclose);
        if (!ok) return mvd_fail(err, "dataset %s has the wrong datatype", name);
    }
    return 0;
}

/* Checks a target dataset's datatype and that it is chunked one clip per chunk. */
static int check_target_layout(hid_t ds, hid_t want_type, const hsize_t *want_chunk, const char *name, mvd_err *err) {
    hid_t type = H5Dget_type(ds), dcpl = H5Dget_create_plist(ds);
    hsize_t chunk[3] = {0, 0, 0};
    int type_ok = type >= 0 && H5Tequal(type, want_type) > 0;
    int chunk_ok = dcpl >= 0 && H5Pget_layout(dcpl) == H5D_CHUNKED && H5Pget_chunk(dcpl, 3, chunk) == 3 &&
                   memcmp(chunk, want_chunk, sizeof chunk) == 0;
    close_id(&type, H5Tclose);
    close_id(&dcpl, H5Pclose);
    if (!type_ok) return mvd_fail(err, "dataset %s: datatype is not the metadata's storage_dtype", name);
    if (!chunk_ok) return mvd_fail(err, "dataset %s: not chunked one clip per chunk", name);
    return 0;
}

static hid_t open_target(cache_shard_reader *r, const char *name, int dim, mvd_err *err) {
    hsize_t want[3] = {(hsize_t)r->clips, (hsize_t)r->meta.tokens, (hsize_t)dim};
    hsize_t chunk[3] = {1, want[1], want[2]};
    hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
    if (dapl < 0 || H5Pset_chunk_cache(dapl, 521, 0, 1.0) < 0) {
        h5_fail(err, "cannot make a dataset access list");
        close_id(&dapl, H5Pclose);
        return H5I_INVALID_HID;
    }
    hid_t ds = open_dataset_checked(r->file, name, 3, want, dapl, err);
    H5Pclose(dapl);
    if (ds >= 0 && check_target_layout(ds, r->target_type, chunk, name, err)) close_id(&ds, H5Dclose);
    return ds;
}

static int reader_open_file(cache_shard_reader *r, mvd_err *err) {
    r->file = H5Fopen(r->path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (r->file < 0) return h5_fail(err, "cannot open as HDF5");
    if (read_meta_attrs(r->file, &r->meta, err)) return -1;
    if (read_int_attr(r->file, "num_clips", &r->clips, err)) return mvd_fail_ctx(err, "incomplete shard");
    if (r->clips < 0 || r->clips > r->meta.shard_size)
        return mvd_fail(err, "num_clips %lld is outside [0, shard_size %d]", (long long)r->clips, r->meta.shard_size);
    int is_f32 = cache_meta_element_size(&r->meta) == 4;
    r->target_type = is_f32 ? H5Tcopy(H5T_IEEE_F32LE) : make_half_type();
    r->sha_type = make_string_type(0);
    r->vstring_type = make_string_type(1);
    if (r->target_type < 0 || r->sha_type < 0 || r->vstring_type < 0) return h5_fail(err, "cannot make datatypes");
    if (open_columns(r, err)) return -1;
    r->image = open_target(r, "targets/image", r->meta.image.feature_dim, err);
    if (r->image < 0) return -1;
    r->video = open_target(r, "targets/video", r->meta.video.feature_dim, err);
    if (r->video < 0) return -1;
    if (!is_f32) {
        int max_dim = r->meta.image.feature_dim > r->meta.video.feature_dim ? r->meta.image.feature_dim
                                                                            : r->meta.video.feature_dim;
        r->scratch = xmalloc((size_t)r->meta.tokens * (size_t)max_dim * 2);
    }
    return 0;
}

static int reader_open_impl(cache_shard_reader **out, const char *path, mvd_err *err) {
    *out = NULL;
    if (h5zstd_register(err)) return -1;
    cache_shard_reader *r = xcalloc(1, sizeof *r);
    r->path = xstrdup(path);
    r->file = r->image = r->video = r->target_type = r->sha_type = r->vstring_type = H5I_INVALID_HID;
    for (int c = 0; c < COL_COUNT; c++) r->column[c] = H5I_INVALID_HID;
    if (reader_open_file(r, err)) {
        mvd_fail_ctx(err, "%s", path);
        cache_shard_reader_close(r);
        return -1;
    }
    *out = r;
    return 0;
}

int cache_shard_reader_open(cache_shard_reader **out, const char *path, mvd_err *err) {
    h5_quiet q = quiet_begin();
    int rc = reader_open_impl(out, path, err);
    quiet_end(q);
    return rc;
}

const cache_meta *cache_shard_reader_meta(const cache_shard_reader *r) { return &r->meta; }
int64_t cache_shard_reader_clips(const cache_shard_reader *r) { return r->clips; }

static int read_vstring(cache_shard_reader *r, int col, hsize_t row, char **out, mvd_err *err) {
    char *value = NULL;
    if (read_row(r->column[col], row, r->vstring_type, &value, columns[col].name, err)) return -1;
    int rc = 0;
    if (!value || strlen(value) > CACHE_STRING_MAX)
        rc = mvd_fail(err, "clips/%s row %llu: missing or longer than %d bytes", columns[col].name,
                      (unsigned long long)row, CACHE_STRING_MAX);
    else
        *out = xstrdup(value);
    if (value) H5free_memory(value);
    return rc;
}

static int read_clip_impl(cache_shard_reader *r, int64_t i, cache_clip *c, mvd_err *err) {
    memset(c, 0, sizeof *c);
    if (i < 0 || i >= r->clips)
        return mvd_fail(err, "clip %lld out of range [0, %lld)", (long long)i, (long long)r->clips);
    hsize_t row = (hsize_t)i;
    for (int col = 0; col < COL_COUNT; col++) {
        int rc;
        if (columns[col].kind == COL_SHA256) {
            rc = read_row(r->column[col], row, r->sha_type, c->spec.pixel_sha256, "clips/pixel_sha256", err);
            c->spec.pixel_sha256[64] = '\0';
        } else if (columns[col].kind == COL_VSTRING) {
            rc = read_vstring(r, col, row, col == COL_PATH ? &c->path : &c->label, err);
        } else {
            int64_t v[CLIP_MAX_FRAMES] = {0};
            rc = read_row(r->column[col], row, H5T_NATIVE_INT64, v, columns[col].name, err);
            if (rc == 0) rc = column_set(c, col, v, err);
        }
        if (rc) return -1;
    }
    if (c->spec.num_frames != r->meta.num_frames)
        return mvd_fail(err, "clip %lld has %d frames, the metadata says %d", (long long)i, c->spec.num_frames,
                        r->meta.num_frames);
    return 0;
}

int cache_shard_reader_clip(cache_shard_reader *r, int64_t i, cache_clip *clip, mvd_err *err) {
    h5_quiet q = quiet_begin();
    int rc = read_clip_impl(r, i, clip, err);
    quiet_end(q);
    if (rc) {
        cache_clip_free(clip);
        return mvd_fail_ctx(err, "%s", r->path);
    }
    return 0;
}

int cache_shard_reader_index(cache_shard_reader *r, int64_t *video_index, int32_t *view, mvd_err *err) {
    if (r->clips == 0) return 0;
    h5_quiet q = quiet_begin();
    /* open_columns checked both are [clips]: whole-dataset reads fill exactly the caller's arrays */
    int ok = H5Dread(r->column[COL_VIDEO_INDEX], H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, video_index) >= 0 &&
             H5Dread(r->column[COL_VIEW], H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, view) >= 0;
    int rc = ok ? 0 : h5_fail(err, "%s: cannot read clips/video_index and clips/view", r->path);
    quiet_end(q);
    return rc;
}

int cache_shard_reader_check_entry(cache_shard_reader *r, const cache_shard_info *entry, mvd_err *err) {
    if (r->clips != entry->clips)
        return mvd_fail(err, "%s: holds %lld clips, the manifest says %lld", r->path, (long long)r->clips,
                        (long long)entry->clips);
    int64_t first = -1, last = -1;
    hid_t ds = r->column[COL_VIDEO_INDEX];
    h5_quiet q = quiet_begin();
    int rc = 0;
    if (r->clips > 0) {
        rc = read_row(ds, 0, H5T_NATIVE_INT64, &first, "clips/video_index", err);
        if (rc == 0) rc = read_row(ds, (hsize_t)r->clips - 1, H5T_NATIVE_INT64, &last, "clips/video_index", err);
    }
    quiet_end(q);
    if (rc != 0) return mvd_fail_ctx(err, "%s", r->path);
    if (first != entry->first_video_index || last != entry->last_video_index)
        return mvd_fail(err, "%s: holds videos %lld..%lld, the manifest says %lld..%lld", r->path, (long long)first,
                        (long long)last, (long long)entry->first_video_index, (long long)entry->last_video_index);
    return 0;
}

static int read_target(cache_shard_reader *r, hid_t ds, int64_t i, float *out, int dim, const char *name,
                       mvd_err *err) {
    if (!out) return 0;
    if (cache_meta_element_size(&r->meta) == 4) return read_row(ds, (hsize_t)i, r->target_type, out, name, err);
    if (read_row(ds, (hsize_t)i, r->target_type, r->scratch, name, err)) return -1;
    half_to_float_array(out, r->scratch, (size_t)r->meta.tokens * (size_t)dim);
    return 0;
}

int cache_shard_reader_targets(cache_shard_reader *r, int64_t i, float *image, float *video, mvd_err *err) {
    if (i < 0 || i >= r->clips)
        return mvd_fail(err, "%s: clip %lld out of range [0, %lld)", r->path, (long long)i, (long long)r->clips);
    h5_quiet q = quiet_begin();
    int rc = read_target(r, r->image, i, image, r->meta.image.feature_dim, "targets/image", err) ||
             read_target(r, r->video, i, video, r->meta.video.feature_dim, "targets/video", err);
    quiet_end(q);
    return rc ? mvd_fail_ctx(err, "%s: clip %lld", r->path, (long long)i) : 0;
}

void cache_shard_reader_storage_bytes(cache_shard_reader *r, uint64_t *image_bytes, uint64_t *video_bytes) {
    h5_quiet q = quiet_begin();
    *image_bytes = H5Dget_storage_size(r->image);
    *video_bytes = H5Dget_storage_size(r->video);
    quiet_end(q);
}

void cache_shard_reader_close(cache_shard_reader *r) {
    if (!r) return;
    h5_quiet q = quiet_begin();
    reader_close_ids(r);
    H5Eclear2(H5E_DEFAULT);
    quiet_end(q);
    free(r->scratch);
    free(r->path);
    free(r);
}

void cache_clip_free(cache_clip *clip) {
    if (!clip) return;
    free(clip->path);
    free(clip->label);
    clip->path = clip->label = NULL;
}
