/* cache_meta.c: the metadata field table, defaults, validation, comparison and JSON form (see cache_meta.h). */
#include "cache_meta.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "clip.h"
#include "h5zstd.h"

#define F_INT(name, member)                                                                                            \
    { name, CACHE_FIELD_INT, offsetof(cache_meta, member), 1, 1 }
#define F_STR(name, member, cmp)                                                                                       \
    { name, CACHE_FIELD_STRING, offsetof(cache_meta, member), sizeof(((cache_meta *)0)->member), cmp }
#define F_TEACHER(prefix, t)                                                                                           \
    F_STR(prefix ".kind", t.kind, 1), F_INT(prefix ".dim", t.dim), F_INT(prefix ".depth", t.depth),                    \
        F_INT(prefix ".heads", t.heads), F_INT(prefix ".mlp_hidden", t.mlp_hidden), F_INT(prefix ".patch", t.patch),   \
        F_INT(prefix ".tubelet", t.tubelet), F_INT(prefix ".input_size", t.input_size),                                \
        F_INT(prefix ".grid_t", t.grid_t), F_INT(prefix ".grid_h", t.grid_h), F_INT(prefix ".grid_w", t.grid_w),       \
        F_INT(prefix ".feature_dim", t.feature_dim), F_STR(prefix ".weights_sha256", t.weights_sha256, 1),             \
        F_STR(prefix ".provenance", t.provenance, 0), F_INT(prefix ".random_init", t.random_init)

static const cache_field fields[] = {
    F_STR("format", format, 1),
    F_INT("format_version", format_version),
    F_STR("tool_version", tool_version, 1),
    F_STR("ffmpeg_version", ffmpeg_version, 1),
    F_INT("num_frames", num_frames),
    F_INT("frame_stride", frame_stride),
    F_INT("input_size", input_size),
    F_INT("image_input_size", image_input_size),
    F_STR("crop_mode", crop_mode, 1),
    {"seed", CACHE_FIELD_U64, offsetof(cache_meta, seed), 1, 1},
    F_INT("views", views),
    {"mean", CACHE_FIELD_DOUBLES, offsetof(cache_meta, mean), 3, 1},
    {"std", CACHE_FIELD_DOUBLES, offsetof(cache_meta, std), 3, 1},
    F_STR("resize_filter", resize_filter, 1),
    F_STR("colour_conversion", colour_conversion, 1),
    F_TEACHER("image_teacher", image),
    F_TEACHER("video_teacher", video),
    F_STR("device", device, 1),
    F_STR("precision", precision, 1),
    F_INT("norm_feature", norm_feature),
    F_STR("storage_dtype", storage_dtype, 1),
    F_INT("zstd_level", zstd_level),
    F_INT("shard_size", shard_size),
    F_INT("tokens", tokens),
    F_STR("list_path", list_path, 0),
    F_STR("list_sha256", list_sha256, 1),
};

const cache_field *cache_meta_fields(size_t *count) {
    *count = sizeof fields / sizeof fields[0];
    return fields;
}

#define COPY_STR(dst, src) snprintf((dst), sizeof(dst), "%s", (src))

static void teacher_init(cache_teacher *t, const char *kind, int tubelet, int grid_t) {
    memset(t, 0, sizeof *t);
    COPY_STR(t->kind, kind);
    t->dim = 768, t->depth = 12, t->heads = 12, t->mlp_hidden = 3072;
    t->patch = 16, t->tubelet = tubelet, t->input_size = 224;
    t->grid_t = grid_t, t->grid_h = 14, t->grid_w = 14;
    t->feature_dim = 768;
}

void cache_meta_init(cache_meta *m) {
    static const double mean[3] = {0.485, 0.456, 0.406}, std[3] = {0.229, 0.224, 0.225};
    memset(m, 0, sizeof *m);
    COPY_STR(m->format, CACHE_FORMAT_NAME);
    m->format_version = CACHE_FORMAT_VERSION;
    COPY_STR(m->tool_version, MVD_VERSION);
    m->num_frames = 16, m->frame_stride = 4, m->input_size = 224, m->image_input_size = 224;
    COPY_STR(m->crop_mode, "multiscale");
    m->views = 1;
    memcpy(m->mean, mean, sizeof mean);
    memcpy(m->std, std, sizeof std);
    COPY_STR(m->resize_filter, "pil-bilinear");
    COPY_STR(m->colour_conversion, "swscale bitexact accurate_rnd");
    teacher_init(&m->image, CACHE_KIND_IMAGE_TEACHER, 1, 8);
    teacher_init(&m->video, CACHE_KIND_VIDEO_TEACHER, 2, 8);
    COPY_STR(m->device, "cpu");
    COPY_STR(m->precision, "fp32");
    COPY_STR(m->storage_dtype, CACHE_DTYPE_F16);
    m->zstd_level = ZSTD_CLEVEL_DEFAULT;
    m->shard_size = 1024;
    m->tokens = 8 * 14 * 14;
}

size_t cache_meta_element_size(const cache_meta *m) { return strcmp(m->storage_dtype, CACHE_DTYPE_F32) == 0 ? 4 : 2; }

/* ---- validation ---- */

int cache_is_sha256_hex(const char *s) {
    if (strlen(s) != 64) return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return 0;
    return 1;
}

static int check_range(const char *name, long long v, long long lo, long long hi, mvd_err *err) {
    if (v < lo || v > hi) return mvd_fail(err, "metadata %s = %lld is outside [%lld, %lld]", name, v, lo, hi);
    return 0;
}

static int validate_teacher(const char *name, const cache_teacher *t, const char *kind, int tokens, mvd_err *err) {
    char f[64];
#define RANGE(member, lo, hi) (snprintf(f, sizeof f, "%s.%s", name, #member), check_range(f, t->member, lo, hi, err))
    if (strcmp(t->kind, kind) != 0)
        return mvd_fail(err, "metadata %s.kind is '%s', expected '%s'", name, t->kind, kind);
    if (RANGE(dim, 1, 65536) || RANGE(depth, 1, 1024) || RANGE(heads, 1, 65536) || RANGE(mlp_hidden, 1, 1 << 20) ||
        RANGE(patch, 1, 4096) || RANGE(tubelet, 1, CLIP_MAX_FRAMES) || RANGE(input_size, 1, 1 << 16) ||
        RANGE(grid_t, 1, 1 << 20) || RANGE(grid_h, 1, 1 << 20) || RANGE(grid_w, 1, 1 << 20) ||
        RANGE(feature_dim, 1, 65536) || RANGE(random_init, 0, 1))
        return -1;
#undef RANGE
    if ((long long)t->grid_t * t->grid_h * t->grid_w != tokens)
        return mvd_fail(err, "metadata %s grid %d x %d x %d does not make %d tokens", name, t->grid_t, t->grid_h,
                        t->grid_w, tokens);
    if ((unsigned long long)tokens * (unsigned long long)t->feature_dim * 4ull > H5ZSTD_MAX_CHUNK_BYTES)
        return mvd_fail(err, "metadata %s: one clip's target (%d x %d) is too large", name, tokens, t->feature_dim);
    if (!cache_is_sha256_hex(t->weights_sha256) && !(t->random_init && t->weights_sha256[0] == '\0'))
        return mvd_fail(err, "metadata %s.weights_sha256 '%s' is not 64 lowercase hex digits", name, t->weights_sha256);
    return 0;
}

static int validate_strings(const cache_meta *m, mvd_err *err) {
    if (strcmp(m->crop_mode, "multiscale") != 0 && strcmp(m->crop_mode, "center") != 0)
        return mvd_fail(err, "metadata crop_mode '%s' is not 'multiscale' or 'center'", m->crop_mode);
    if (strcmp(m->storage_dtype, CACHE_DTYPE_F16) != 0 && strcmp(m->storage_dtype, CACHE_DTYPE_F32) != 0)
        return mvd_fail(err, "metadata storage_dtype '%s' is not '%s' or '%s'", m->storage_dtype, CACHE_DTYPE_F16,
                        CACHE_DTYPE_F32);
    if (!cache_is_sha256_hex(m->list_sha256))
        return mvd_fail(err, "metadata list_sha256 '%s' is not 64 lowercase hex digits", m->list_sha256);
    return 0;
}

static int validate_numbers(const cache_meta *m, mvd_err *err) {
    if (check_range("num_frames", m->num_frames, 1, CLIP_MAX_FRAMES, err) ||
        check_range("frame_stride", m->frame_stride, 1, 1 << 20, err) ||
        check_range("input_size", m->input_size, 1, 1 << 16, err) ||
        check_range("image_input_size", m->image_input_size, 1, 1 << 16, err) ||
        check_range("views", m->views, 1, 1 << 16, err) || check_range("norm_feature", m->norm_feature, 0, 1, err) ||
        check_range("zstd_level", m->zstd_level, ZSTD_minCLevel(), ZSTD_maxCLevel(), err) ||
        check_range("shard_size", m->shard_size, 1, 1 << 24, err) || check_range("tokens", m->tokens, 1, 1 << 24, err))
        return -1;
    for (int c = 0; c < 3; c++)
        if (!isfinite(m->mean[c]) || !isfinite(m->std[c]) || m->std[c] <= 0)
            return mvd_fail(err, "metadata mean/std channel %d (%g, %g) is not usable", c, m->mean[c], m->std[c]);
    return 0;
}

int cache_meta_validate(const cache_meta *m, mvd_err *err) {
    if (strcmp(m->format, CACHE_FORMAT_NAME) != 0)
        return mvd_fail(err, "format is '%s', expected '%s'", m->format, CACHE_FORMAT_NAME);
    if (m->format_version != CACHE_FORMAT_VERSION)
        return mvd_fail(err, "format version %d is not supported (this build reads version %d)", m->format_version,
                        CACHE_FORMAT_VERSION);
    if (validate_numbers(m, err) || validate_strings(m, err)) return -1;
    if (validate_teacher("image_teacher", &m->image, CACHE_KIND_IMAGE_TEACHER, m->tokens, err) ||
        validate_teacher("video_teacher", &m->video, CACHE_KIND_VIDEO_TEACHER, m->tokens, err))
        return -1;
    return 0;
}

/* ---- comparison ---- */

void cache_meta_field_text(const cache_meta *m, const cache_field *f, char *buf, size_t n) {
    const char *p = (const char *)m + f->offset;
    switch (f->kind) {
    case CACHE_FIELD_INT: snprintf(buf, n, "%d", *(const int *)p); break;
    case CACHE_FIELD_U64: snprintf(buf, n, "%" PRIu64, *(const uint64_t *)p); break;
    case CACHE_FIELD_STRING: snprintf(buf, n, "'%s'", p); break;
    case CACHE_FIELD_DOUBLES: {
        const double *d = (const double *)p;
        snprintf(buf, n, "[%.17g, %.17g, %.17g]", d[0], f->count > 1 ? d[1] : 0.0, f->count > 2 ? d[2] : 0.0);
        break;
    }
    }
}

static int field_equal(const cache_meta *a, const cache_meta *b, const cache_field *f) {
    const char *pa = (const char *)a + f->offset, *pb = (const char *)b + f->offset;
    switch (f->kind) {
    case CACHE_FIELD_INT: return *(const int *)pa == *(const int *)pb;
    case CACHE_FIELD_U64: return *(const uint64_t *)pa == *(const uint64_t *)pb;
    case CACHE_FIELD_STRING: return strcmp(pa, pb) == 0;
    case CACHE_FIELD_DOUBLES: return memcmp(pa, pb, f->count * sizeof(double)) == 0;
    }
    return 0;
}

int cache_meta_same_settings(const cache_meta *cache, const cache_meta *run, mvd_err *err) {
    size_t n;
    const cache_field *fs = cache_meta_fields(&n);
    for (size_t i = 0; i < n; i++) {
        if (!fs[i].compared || field_equal(cache, run, &fs[i])) continue;
        char have[600], want[600];
        cache_meta_field_text(cache, &fs[i], have, sizeof have);
        cache_meta_field_text(run, &fs[i], want, sizeof want);
        return mvd_fail(err, "settings differ at %s: the cache has %s, this run has %s", fs[i].name, have, want);
    }
    return 0;
}

static int geometry_field(const char *name, int have, int want, mvd_err *err) {
    if (want != 0 && have != want) return mvd_fail(err, "cache %s is %d, expected %d", name, have, want);
    return 0;
}

int cache_meta_check_geometry(const cache_meta *m, const cache_geometry *g, mvd_err *err) {
    const cache_teacher *ts[2] = {&m->image, &m->video};
    const char *names[2] = {"image_teacher", "video_teacher"};
    if (geometry_field("num_frames", m->num_frames, g->num_frames, err) ||
        geometry_field("input_size", m->input_size, g->input_size, err) ||
        geometry_field("image_teacher.feature_dim", m->image.feature_dim, g->image_feature_dim, err) ||
        geometry_field("video_teacher.feature_dim", m->video.feature_dim, g->video_feature_dim, err))
        return -1;
    for (int i = 0; i < 2; i++) {
        char f[64];
        snprintf(f, sizeof f, "%s.grid_t", names[i]);
        if (geometry_field(f, ts[i]->grid_t, g->grid_t, err)) return -1;
        snprintf(f, sizeof f, "%s.grid_h", names[i]);
        if (geometry_field(f, ts[i]->grid_h, g->grid_h, err)) return -1;
        snprintf(f, sizeof f, "%s.grid_w", names[i]);
        if (geometry_field(f, ts[i]->grid_w, g->grid_w, err)) return -1;
    }
    return 0;
}

/* ---- JSON ---- */

/* The object a field lives in: the root, or the teacher object named by the prefix before '.'. */
static cJSON *json_parent(cJSON *root, const char *name, const char **leaf) {
    const char *dot = strchr(name, '.');
    if (!dot) {
        *leaf = name;
        return root;
    }
    char prefix[64];
    snprintf(prefix, sizeof prefix, "%.*s", (int)(dot - name), name);
    *leaf = dot + 1;
    cJSON *child = cJSON_GetObjectItemCaseSensitive(root, prefix);
    if (!child) child = cJSON_AddObjectToObject(root, prefix);
    return child;
}

static cJSON *field_to_json(const cache_meta *m, const cache_field *f) {
    const char *p = (const char *)m + f->offset;
    char buf[32];
    switch (f->kind) {
    case CACHE_FIELD_INT: return cJSON_CreateNumber(*(const int *)p);
    case CACHE_FIELD_U64: snprintf(buf, sizeof buf, "%" PRIu64, *(const uint64_t *)p); return cJSON_CreateString(buf);
    case CACHE_FIELD_STRING: return cJSON_CreateString(p);
    case CACHE_FIELD_DOUBLES: return cJSON_CreateDoubleArray((const double *)p, (int)f->count);
    }
    return NULL;
}

cJSON *cache_meta_to_json(const cache_meta *m) {
    size_t n;
    const cache_field *fs = cache_meta_fields(&n);
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    for (size_t i = 0; i < n; i++) {
        const char *leaf;
        cJSON *parent = json_parent(root, fs[i].name, &leaf);
        cJSON *value = field_to_json(m, &fs[i]);
        if (!parent || !value || !cJSON_AddItemToObject(parent, leaf, value)) {
            cJSON_Delete(value);
            cJSON_Delete(root);
            return NULL;
        }
    }
    return root;
}

static int parse_u64(const char *s, uint64_t *out) {
    if (!s || !*s || strlen(s) > 20) return -1;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9') return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || errno == ERANGE) return -1;
    *out = (uint64_t)v;
    return 0;
}

static int field_from_json(const cJSON *item, const cache_field *f, cache_meta *m, mvd_err *err) {
    char *p = (char *)m + f->offset;
    switch (f->kind) {
    case CACHE_FIELD_INT: {
        double v = cJSON_IsNumber(item) ? item->valuedouble : NAN;
        if (!(v >= INT_MIN && v <= INT_MAX) || v != floor(v))
            return mvd_fail(err, "metadata %s: expected an integer", f->name);
        *(int *)p = (int)v;
        return 0;
    }
    case CACHE_FIELD_U64:
        if (!cJSON_IsString(item) || parse_u64(item->valuestring, (uint64_t *)p) != 0)
            return mvd_fail(err, "metadata %s: expected an unsigned 64-bit integer as a decimal string", f->name);
        return 0;
    case CACHE_FIELD_STRING:
        if (!cJSON_IsString(item) || strlen(item->valuestring) >= f->count)
            return mvd_fail(err, "metadata %s: expected a string shorter than %zu bytes", f->name, f->count);
        memcpy(p, item->valuestring, strlen(item->valuestring) + 1);
        return 0;
    case CACHE_FIELD_DOUBLES:
        if (!cJSON_IsArray(item) || (size_t)cJSON_GetArraySize(item) != f->count)
            return mvd_fail(err, "metadata %s: expected an array of %zu numbers", f->name, f->count);
        for (size_t i = 0; i < f->count; i++) {
            const cJSON *v = cJSON_GetArrayItem(item, (int)i);
            if (!cJSON_IsNumber(v)) return mvd_fail(err, "metadata %s: expected numbers", f->name);
            ((double *)p)[i] = v->valuedouble;
        }
        return 0;
    }
    return mvd_fail(err, "metadata %s: unknown field kind", f->name);
}

int cache_meta_from_json(const cJSON *json, cache_meta *m, mvd_err *err) {
    size_t n;
    const cache_field *fs = cache_meta_fields(&n);
    memset(m, 0, sizeof *m);
    if (!cJSON_IsObject(json)) return mvd_fail(err, "metadata: expected a JSON object");
    for (size_t i = 0; i < n; i++) {
        const char *name = fs[i].name, *dot = strchr(name, '.');
        const cJSON *parent = json;
        if (dot) {
            char prefix[64];
            snprintf(prefix, sizeof prefix, "%.*s", (int)(dot - name), name);
            parent = cJSON_GetObjectItemCaseSensitive(json, prefix);
            name = dot + 1;
        }
        const cJSON *item = cJSON_IsObject(parent) ? cJSON_GetObjectItemCaseSensitive(parent, name) : NULL;
        if (!item) return mvd_fail(err, "metadata: missing field %s", fs[i].name);
        if (field_from_json(item, &fs[i], m, err) != 0) return -1;
    }
    return 0;
}
