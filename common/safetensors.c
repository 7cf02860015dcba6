/* safetensors.c: see safetensors.h. The header is JSON parsed with cJSON; every field is validated before the
 * caller can read a tensor. */
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ST_MAX_HEADER (100u << 20) /* the format's own limit on the JSON header */

static const struct {
    const char *name;
    st_dtype dtype;
    int size;
} st_dtypes[] = {
    {"F32", ST_F32, 4}, {"F16", ST_F16, 2}, {"BF16", ST_BF16, 2}, {"F64", ST_F64, 8},
    {"I64", ST_I64, 8}, {"I32", ST_I32, 4}, {"U8", ST_U8, 1},     {"BOOL", ST_BOOL, 1},
};

static int dtype_size(st_dtype d) {
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (st_dtypes[i].dtype == d) return st_dtypes[i].size;
    return 0;
}

const char *st_dtype_name(st_dtype d) {
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (st_dtypes[i].dtype == d) return st_dtypes[i].name;
    return "?";
}

static int dtype_parse(const char *s, st_dtype *d) {
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (strcmp(st_dtypes[i].name, s) == 0) {
            *d = st_dtypes[i].dtype;
            return 0;
        }
    return -1;
}

/* Parses one tensor entry of the header into t, checking shape and byte range against the data size. */
static int parse_tensor(const cJSON *item, uint64_t data_size, st_tensor *t, const char *path, mvd_err *err) {
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    t->name = xstrdup(item->string);
    if (!cJSON_IsString(dtype) || dtype_parse(dtype->valuestring, &t->dtype) != 0)
        return mvd_fail(err, "%s: tensor '%s': missing or unsupported dtype", path, t->name);
    if (!cJSON_IsArray(shape) || cJSON_GetArraySize(shape) > ST_MAX_DIMS)
        return mvd_fail(err, "%s: tensor '%s': bad shape", path, t->name);
    t->ndim = cJSON_GetArraySize(shape);
    t->numel = 1;
    for (int d = 0; d < t->ndim; d++) {
        const cJSON *s = cJSON_GetArrayItem(shape, d);
        if (!cJSON_IsNumber(s) || s->valuedouble < 0 || s->valuedouble > 9e15 || floor(s->valuedouble) != s->valuedouble)
            return mvd_fail(err, "%s: tensor '%s': bad dimension %d", path, t->name, d);
        t->shape[d] = (int64_t)s->valuedouble;
        if (t->shape[d] > 0 && t->numel > INT64_MAX / 8 / t->shape[d])
            return mvd_fail(err, "%s: tensor '%s': shape too large", path, t->name);
        t->numel *= t->shape[d];
    }
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2)
        return mvd_fail(err, "%s: tensor '%s': bad data_offsets", path, t->name);
    double begin = cJSON_GetArrayItem(offs, 0)->valuedouble, end = cJSON_GetArrayItem(offs, 1)->valuedouble;
    if (!(begin >= 0 && end >= begin && end <= (double)data_size))
        return mvd_fail(err, "%s: tensor '%s': data_offsets [%.0f, %.0f) outside the %llu-byte data area", path,
                        t->name, begin, end, (unsigned long long)data_size);
    t->offset = (uint64_t)begin;
    t->nbytes = (uint64_t)end - t->offset;
    if (t->nbytes != (uint64_t)t->numel * (uint64_t)dtype_size(t->dtype))
        return mvd_fail(err, "%s: tensor '%s': %llu bytes do not match its shape and dtype %s", path, t->name,
                        (unsigned long long)t->nbytes, dtype->valuestring);
    return 0;
}

static int parse_metadata(st_file *f, const cJSON *meta, mvd_err *err) {
    int n = cJSON_GetArraySize(meta);
    f->meta_keys = xcalloc((size_t)n, sizeof(char *));
    f->meta_values = xcalloc((size_t)n, sizeof(char *));
    const cJSON *kv;
    cJSON_ArrayForEach(kv, meta) {
        if (!cJSON_IsString(kv)) return mvd_fail(err, "%s: __metadata__ value '%s' is not a string", f->path, kv->string);
        f->meta_keys[f->meta_count] = xstrdup(kv->string);
        f->meta_values[f->meta_count] = xstrdup(kv->valuestring);
        f->meta_count++;
    }
    return 0;
}

static int parse_header(st_file *f, const char *json, uint64_t data_size, mvd_err *err) {
    cJSON *root = cJSON_Parse(json);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return mvd_fail(err, "%s: header is not a JSON object", f->path);
    }
    int n = cJSON_GetArraySize(root), rc = 0;
    f->tensors = xcalloc((size_t)n, sizeof(st_tensor));
    const cJSON *item;
    cJSON_ArrayForEach(item, root) {
        if (strcmp(item->string, "__metadata__") == 0) {
            if (cJSON_IsObject(item) && (rc = parse_metadata(f, item, err)) != 0) break;
            continue;
        }
        if (!cJSON_IsObject(item)) {
            rc = mvd_fail(err, "%s: entry '%s' is not an object", f->path, item->string);
            break;
        }
        if ((rc = parse_tensor(item, data_size, &f->tensors[f->count], f->path, err)) != 0) {
            f->count++; /* so st_close frees the name */
            break;
        }
        f->count++;
    }
    cJSON_Delete(root);
    return rc;
}

int st_open(st_file *f, const char *path, mvd_err *err) {
    memset(f, 0, sizeof *f);
    f->path = xstrdup(path);
    struct stat st;
    if (stat(path, &st) != 0) {
        mvd_fail(err, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    f->fp = fopen(path, "rb");
    if (!f->fp) {
        mvd_fail(err, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    unsigned char len_bytes[8];
    if (st.st_size < 8 || fread(len_bytes, 1, 8, f->fp) != 8) {
        mvd_fail(err, "%s: too short to be a safetensors file", path);
        goto fail;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | len_bytes[i];
    if (hlen == 0 || hlen > ST_MAX_HEADER || hlen > (uint64_t)st.st_size - 8) {
        mvd_fail(err, "%s: header length %llu is invalid for a %lld-byte file", path, (unsigned long long)hlen,
                 (long long)st.st_size);
        goto fail;
    }
    char *json = xmalloc(hlen + 1);
    if (fread(json, 1, hlen, f->fp) != hlen) {
        free(json);
        mvd_fail(err, "%s: truncated header", path);
        goto fail;
    }
    json[hlen] = '\0';
    f->data_start = 8 + hlen;
    int rc = parse_header(f, json, (uint64_t)st.st_size - f->data_start, err);
    free(json);
    if (rc == 0) return 0;
fail:
    st_close(f);
    return -1;
}

void st_close(st_file *f) {
    if (f->fp) fclose(f->fp);
    for (int64_t i = 0; i < f->count; i++) free(f->tensors[i].name);
    for (int64_t i = 0; i < f->meta_count; i++) {
        free(f->meta_keys[i]);
        free(f->meta_values[i]);
    }
    free(f->tensors);
    free(f->meta_keys);
    free(f->meta_values);
    free(f->path);
    memset(f, 0, sizeof *f);
}

const st_tensor *st_find(const st_file *f, const char *name) {
    for (int64_t i = 0; i < f->count; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

const char *st_meta(const st_file *f, const char *key) {
    for (int64_t i = 0; i < f->meta_count; i++)
        if (strcmp(f->meta_keys[i], key) == 0) return f->meta_values[i];
    return NULL;
}

int st_read_raw(st_file *f, const st_tensor *t, void *dst, mvd_err *err) {
    if (fseeko(f->fp, (off_t)(f->data_start + t->offset), SEEK_SET) != 0 || fread(dst, 1, t->nbytes, f->fp) != t->nbytes)
        return mvd_fail(err, "%s: cannot read tensor '%s'", f->path, t->name);
    return 0;
}

static float half_bits_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    float v;
    if (exp == 0) v = ldexpf((float)mant, -24);
    else if (exp == 31) v = mant ? NAN : INFINITY;
    else v = ldexpf((float)(mant | 0x400), (int)exp - 25);
    return sign ? -v : v;
}

int st_read_f32(st_file *f, const st_tensor *t, float *dst, mvd_err *err) {
    if (t->dtype == ST_F32) return st_read_raw(f, t, dst, err);
    if (t->dtype != ST_F16 && t->dtype != ST_BF16 && t->dtype != ST_F64)
        return mvd_fail(err, "%s: tensor '%s' has dtype %s, expected a floating type", f->path, t->name,
                        st_dtype_name(t->dtype));
    void *raw = xmalloc(t->nbytes);
    if (st_read_raw(f, t, raw, err) != 0) {
        free(raw);
        return -1;
    }
    for (int64_t i = 0; i < t->numel; i++) {
        if (t->dtype == ST_F64) {
            dst[i] = (float)((const double *)raw)[i];
        } else if (t->dtype == ST_F16) {
            dst[i] = half_bits_to_float(((const uint16_t *)raw)[i]);
        } else {
            uint32_t bits = (uint32_t)((const uint16_t *)raw)[i] << 16;
            memcpy(&dst[i], &bits, 4);
        }
    }
    free(raw);
    return 0;
}

void st_writer_init(st_writer *w) { memset(w, 0, sizeof *w); }

void st_writer_add(st_writer *w, const char *name, st_dtype dtype, int ndim, const int64_t *shape, const void *data) {
    if (w->count == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 64;
        struct st_out *grown = realloc(w->items, (size_t)w->cap * sizeof *grown);
        if (!grown) {
            fprintf(stderr, "fatal: out of memory growing the safetensors writer\n");
            abort();
        }
        w->items = grown;
    }
    struct st_out *o = &w->items[w->count++];
    o->name = xstrdup(name);
    o->dtype = dtype;
    o->ndim = ndim;
    uint64_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        o->shape[d] = shape[d];
        numel *= (uint64_t)shape[d];
    }
    o->data = data;
    o->nbytes = numel * (uint64_t)dtype_size(dtype);
}

void st_writer_meta(st_writer *w, const char *key, const char *value) {
    w->meta_keys = realloc(w->meta_keys, (size_t)(w->meta_count + 1) * sizeof(char *));
    w->meta_values = realloc(w->meta_values, (size_t)(w->meta_count + 1) * sizeof(char *));
    if (!w->meta_keys || !w->meta_values) {
        fprintf(stderr, "fatal: out of memory growing safetensors metadata\n");
        abort();
    }
    w->meta_keys[w->meta_count] = xstrdup(key);
    w->meta_values[w->meta_count] = xstrdup(value);
    w->meta_count++;
}

/* Builds the JSON header, padded with spaces to a multiple of 8 bytes as the format recommends. */
static char *build_header(const st_writer *w, uint64_t *len) {
    cJSON *root = cJSON_CreateObject();
    if (w->meta_count > 0) {
        cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
        for (int64_t i = 0; i < w->meta_count; i++) cJSON_AddStringToObject(meta, w->meta_keys[i], w->meta_values[i]);
    }
    uint64_t offset = 0;
    for (int64_t i = 0; i < w->count; i++) {
        const struct st_out *o = &w->items[i];
        cJSON *t = cJSON_AddObjectToObject(root, o->name);
        cJSON_AddStringToObject(t, "dtype", st_dtype_name(o->dtype));
        cJSON *shape = cJSON_AddArrayToObject(t, "shape");
        for (int d = 0; d < o->ndim; d++) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)o->shape[d]));
        cJSON *offs = cJSON_AddArrayToObject(t, "data_offsets");
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)offset));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(offset + o->nbytes)));
        offset += o->nbytes;
    }
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!json) {
        fprintf(stderr, "fatal: cJSON could not print a safetensors header\n");
        abort();
    }
    uint64_t n = strlen(json), padded = (n + 7) / 8 * 8;
    char *out = xmalloc(padded + 1);
    memcpy(out, json, n);
    memset(out + n, ' ', padded - n);
    out[padded] = '\0';
    cJSON_free(json);
    *len = padded;
    return out;
}

int st_writer_save(st_writer *w, const char *path, mvd_err *err) {
    uint64_t hlen;
    char *header = build_header(w, &hlen);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *fp = fopen(tmp, "wb");
    if (!fp) {
        free(header);
        return mvd_fail(err, "%s: cannot create: %s", tmp, strerror(errno));
    }
    unsigned char len_bytes[8];
    for (int i = 0; i < 8; i++) len_bytes[i] = (unsigned char)(hlen >> (8 * i));
    int ok = fwrite(len_bytes, 1, 8, fp) == 8 && fwrite(header, 1, hlen, fp) == hlen;
    for (int64_t i = 0; ok && i < w->count; i++)
        ok = fwrite(w->items[i].data, 1, w->items[i].nbytes, fp) == w->items[i].nbytes;
    free(header);
    ok = ok && fflush(fp) == 0 && fsync(fileno(fp)) == 0;
    if (fclose(fp) != 0) ok = 0;
    if (!ok) {
        remove(tmp);
        return mvd_fail(err, "%s: write failed: %s", tmp, strerror(errno));
    }
    return rename_atomic(tmp, path, err);
}

void st_writer_free(st_writer *w) {
    for (int64_t i = 0; i < w->count; i++) free(w->items[i].name);
    for (int64_t i = 0; i < w->meta_count; i++) {
        free(w->meta_keys[i]);
        free(w->meta_values[i]);
    }
    free(w->items);
    free(w->meta_keys);
    free(w->meta_values);
    memset(w, 0, sizeof *w);
}
