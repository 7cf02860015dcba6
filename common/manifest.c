/* manifest.c: loading, validating and atomically saving manifest.json (see manifest.h). */
#include "manifest.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MANIFEST_MAX_BYTES ((long long)256 << 20)
#define MANIFEST_STRING_MAX (64 * 1024)
#define JSON_MAX_EXACT_INT 9007199254740992.0 /* 2^53: larger integers are not exact in a JSON double */

void manifest_init(cache_manifest *m, const char *dir, const cache_meta *meta) {
    memset(m, 0, sizeof *m);
    m->dir = xstrdup(dir);
    m->meta = *meta;
}

static char *manifest_path(const char *dir) { return path_join(dir, MANIFEST_FILE_NAME); }

int manifest_exists(const char *dir) {
    char *path = manifest_path(dir);
    int exists = file_exists(path);
    free(path);
    return exists;
}

void manifest_free(cache_manifest *m) {
    for (size_t i = 0; i < m->num_failures; i++) {
        free(m->failures[i].path);
        free(m->failures[i].reason);
    }
    free(m->failures);
    free(m->shards);
    free(m->dir);
    memset(m, 0, sizeof *m);
}

/* ---- saving ---- */

static cJSON *shard_to_json(const cache_shard_info *s) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    int ok = cJSON_AddStringToObject(o, "file", s->file) && cJSON_AddNumberToObject(o, "clips", (double)s->clips) &&
             cJSON_AddNumberToObject(o, "first_video_index", (double)s->first_video_index) &&
             cJSON_AddNumberToObject(o, "last_video_index", (double)s->last_video_index) &&
             cJSON_AddStringToObject(o, "sha256", s->sha256);
    if (!ok) cJSON_Delete(o);
    return ok ? o : NULL;
}

static cJSON *failure_to_json(const manifest_failure *f) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    int ok = cJSON_AddNumberToObject(o, "video_index", (double)f->video_index) &&
             cJSON_AddStringToObject(o, "path", f->path) && cJSON_AddStringToObject(o, "reason", f->reason);
    if (!ok) cJSON_Delete(o);
    return ok ? o : NULL;
}

static cJSON *manifest_to_json(const cache_manifest *m) {
    cJSON *root = cJSON_CreateObject();
    cJSON *meta = cache_meta_to_json(&m->meta);
    cJSON *shards = cJSON_CreateArray(), *failures = cJSON_CreateArray();
    int ok = root && meta && shards && failures && cJSON_AddStringToObject(root, "format", MANIFEST_FORMAT_NAME) &&
             cJSON_AddNumberToObject(root, "format_version", MANIFEST_FORMAT_VERSION);
    for (size_t i = 0; ok && i < m->num_shards; i++) {
        cJSON *s = shard_to_json(&m->shards[i]);
        ok = s && cJSON_AddItemToArray(shards, s);
    }
    for (size_t i = 0; ok && i < m->num_failures; i++) {
        cJSON *f = failure_to_json(&m->failures[i]);
        ok = f && cJSON_AddItemToArray(failures, f);
    }
    ok = ok && cJSON_AddItemToObject(root, "metadata", meta) && (meta = NULL, 1) &&
         cJSON_AddItemToObject(root, "shards", shards) && (shards = NULL, 1) &&
         cJSON_AddItemToObject(root, "failures", failures) && (failures = NULL, 1) &&
         cJSON_AddBoolToObject(root, "complete", m->complete != 0);
    cJSON_Delete(meta);
    cJSON_Delete(shards);
    cJSON_Delete(failures);
    if (!ok) cJSON_Delete(root);
    return ok ? root : NULL;
}

int manifest_save(const cache_manifest *m, mvd_err *err) {
    cJSON *json = manifest_to_json(m);
    char *text = json ? cJSON_Print(json) : NULL;
    cJSON_Delete(json);
    char *path = manifest_path(m->dir);
    int rc = text ? write_file_atomic(path, text, strlen(text), err) : mvd_fail(err, "%s: cannot format JSON", path);
    free(text);
    free(path);
    return rc;
}

/* ---- loading ---- */

static int json_int64(const cJSON *o, const char *key, int64_t lo, int64_t *out, mvd_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!(d >= (double)lo && d <= JSON_MAX_EXACT_INT) || d != floor(d))
        return mvd_fail(err, "'%s' is missing or not an integer >= %lld", key, (long long)lo);
    *out = (int64_t)d;
    return 0;
}

static const char *json_string(const cJSON *o, const char *key, size_t max, mvd_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(v) || strlen(v->valuestring) > max) {
        mvd_fail(err, "'%s' is missing, not a string or longer than %zu bytes", key, max);
        return NULL;
    }
    return v->valuestring;
}

/* Only plain shard names: a manifest must not point outside its folder. */
static int is_shard_name(const char *s) {
    if (strlen(s) != strlen("shard-00000.h5") || strncmp(s, "shard-", 6) != 0 || strcmp(s + 11, ".h5") != 0) return 0;
    for (int i = 6; i < 11; i++)
        if (s[i] < '0' || s[i] > '9') return 0;
    return 1;
}

static int is_sha256_or_empty(const char *s) { return s[0] == '\0' || cache_is_sha256_hex(s); }

static int shard_from_json(const cJSON *o, cache_shard_info *s, mvd_err *err) {
    memset(s, 0, sizeof *s);
    const char *file = json_string(o, "file", CACHE_SHARD_NAME_MAX - 1, err);
    if (!file) return -1;
    if (!is_shard_name(file)) return mvd_fail(err, "'%s' is not a shard file name", file);
    snprintf(s->file, sizeof s->file, "%s", file);
    if (json_int64(o, "clips", 0, &s->clips, err) ||
        json_int64(o, "first_video_index", -1, &s->first_video_index, err) ||
        json_int64(o, "last_video_index", -1, &s->last_video_index, err))
        return mvd_fail_ctx(err, "shard %s", file);
    const char *sha = json_string(o, "sha256", 64, err);
    if (!sha || !is_sha256_or_empty(sha)) return mvd_fail(err, "shard %s: sha256 is not 64 lowercase hex digits", file);
    snprintf(s->sha256, sizeof s->sha256, "%s", sha);
    return 0;
}

static int failure_from_json(const cJSON *o, manifest_failure *f, mvd_err *err) {
    const char *path = json_string(o, "path", MANIFEST_STRING_MAX, err);
    const char *reason = path ? json_string(o, "reason", MANIFEST_STRING_MAX, err) : NULL;
    if (!path || !reason || json_int64(o, "video_index", -1, &f->video_index, err)) return -1;
    f->path = xstrdup(path);
    f->reason = xstrdup(reason);
    return 0;
}

static int load_arrays(cache_manifest *m, const cJSON *root, mvd_err *err) {
    const cJSON *shards = cJSON_GetObjectItemCaseSensitive(root, "shards");
    const cJSON *failures = cJSON_GetObjectItemCaseSensitive(root, "failures");
    if (!cJSON_IsArray(shards) || !cJSON_IsArray(failures))
        return mvd_fail(err, "'shards' or 'failures' is not an array");
    size_t ns = (size_t)cJSON_GetArraySize(shards), nf = (size_t)cJSON_GetArraySize(failures);
    m->shards = xcalloc(ns ? ns : 1, sizeof *m->shards);
    m->cap_shards = ns ? ns : 1;
    m->failures = xcalloc(nf ? nf : 1, sizeof *m->failures);
    m->cap_failures = nf ? nf : 1;
    const cJSON *item;
    cJSON_ArrayForEach(item, shards) {
        if (shard_from_json(item, &m->shards[m->num_shards], err))
            return mvd_fail_ctx(err, "shards[%zu]", m->num_shards);
        if (manifest_find_shard(m, m->shards[m->num_shards].file))
            return mvd_fail(err, "shard %s is listed twice", m->shards[m->num_shards].file);
        m->num_shards++;
    }
    cJSON_ArrayForEach(item, failures) {
        if (failure_from_json(item, &m->failures[m->num_failures], err))
            return mvd_fail_ctx(err, "failures[%zu]", m->num_failures);
        m->num_failures++;
    }
    return 0;
}

static int load_json(cache_manifest *m, const cJSON *root, mvd_err *err) {
    const char *format = json_string(root, "format", 64, err);
    int64_t version;
    if (!format) return -1;
    if (strcmp(format, MANIFEST_FORMAT_NAME) != 0)
        return mvd_fail(err, "format is '%s', expected '%s'", format, MANIFEST_FORMAT_NAME);
    if (json_int64(root, "format_version", 0, &version, err)) return -1;
    if (version != MANIFEST_FORMAT_VERSION)
        return mvd_fail(err, "manifest format version %lld is not supported (this build reads version %d)",
                        (long long)version, MANIFEST_FORMAT_VERSION);
    const cJSON *complete = cJSON_GetObjectItemCaseSensitive(root, "complete");
    if (!cJSON_IsBool(complete)) return mvd_fail(err, "'complete' is missing or not a boolean");
    m->complete = cJSON_IsTrue(complete);
    if (cache_meta_from_json(cJSON_GetObjectItemCaseSensitive(root, "metadata"), &m->meta, err) ||
        cache_meta_validate(&m->meta, err))
        return -1;
    return load_arrays(m, root, err);
}

static char *read_text_file(const char *path, mvd_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        mvd_fail(err, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    char *text = NULL;
    if (fstat(fileno(f), &st) != 0 || st.st_size < 0 || (long long)st.st_size > MANIFEST_MAX_BYTES) {
        mvd_fail(err, "%s: cannot size it, or larger than %lld bytes", path, MANIFEST_MAX_BYTES);
    } else {
        text = xmalloc((size_t)st.st_size + 1);
        if (fread(text, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
            mvd_fail(err, "%s: read failed", path);
            free(text);
            text = NULL;
        } else {
            text[st.st_size] = '\0';
        }
    }
    fclose(f);
    return text;
}

int manifest_load(cache_manifest *m, const char *dir, mvd_err *err) {
    memset(m, 0, sizeof *m);
    m->dir = xstrdup(dir);
    char *path = manifest_path(dir);
    char *text = read_text_file(path, err);
    int rc = -1;
    if (text) {
        cJSON *root = cJSON_Parse(text);
        if (!root)
            rc = mvd_fail(err, "%s: not valid JSON", path);
        else if (load_json(m, root, err))
            rc = mvd_fail_ctx(err, "%s", path);
        else
            rc = 0;
        cJSON_Delete(root);
    }
    free(text);
    free(path);
    if (rc) manifest_free(m);
    return rc;
}

/* ---- changes ---- */

const cache_shard_info *manifest_find_shard(const cache_manifest *m, const char *file) {
    for (size_t i = 0; i < m->num_shards; i++)
        if (strcmp(m->shards[i].file, file) == 0) return &m->shards[i];
    return NULL;
}

int manifest_drop_shard(cache_manifest *m, const char *file, mvd_err *err) {
    const cache_shard_info *found = manifest_find_shard(m, file);
    if (!found) return 0;
    size_t i = (size_t)(found - m->shards);
    memmove(&m->shards[i], &m->shards[i + 1], (m->num_shards - i - 1) * sizeof m->shards[0]);
    m->num_shards--;
    m->complete = 0;
    return manifest_save(m, err);
}

void manifest_forget_failures(cache_manifest *m, int64_t first, int64_t end) {
    size_t kept = 0;
    for (size_t i = 0; i < m->num_failures; i++) {
        manifest_failure *f = &m->failures[i];
        if (f->video_index >= first && f->video_index < end) {
            free(f->path);
            free(f->reason);
        } else {
            m->failures[kept++] = *f;
        }
    }
    m->num_failures = kept;
}

int64_t manifest_total_clips(const cache_manifest *m) {
    int64_t n = 0;
    for (size_t i = 0; i < m->num_shards; i++) n += m->shards[i].clips;
    return n;
}

static void *grow(void *array, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return array;
    size_t cap2 = *cap ? *cap * 2 : 16;
    while (cap2 < need) cap2 *= 2;
    void *p = realloc(array, cap2 * elem);
    if (!p) {
        fprintf(stderr, "manifest: out of memory\n");
        abort();
    }
    *cap = cap2;
    return p;
}

int manifest_add_shard(cache_manifest *m, const cache_shard_info *shard, mvd_err *err) {
    if (!is_shard_name(shard->file)) return mvd_fail(err, "'%s' is not a shard file name", shard->file);
    if (manifest_find_shard(m, shard->file))
        return mvd_fail(err, "%s: shard %s is already listed", m->dir, shard->file);
    m->shards = grow(m->shards, &m->cap_shards, m->num_shards + 1, sizeof *m->shards);
    m->shards[m->num_shards++] = *shard;
    if (manifest_save(m, err) == 0) return 0;
    m->num_shards--;
    return -1;
}

int manifest_add_failure(cache_manifest *m, int64_t video_index, const char *path, const char *reason, mvd_err *err) {
    m->failures = grow(m->failures, &m->cap_failures, m->num_failures + 1, sizeof *m->failures);
    manifest_failure *f = &m->failures[m->num_failures++];
    f->video_index = video_index;
    f->path = xstrdup(path ? path : "");
    f->reason = xstrdup(reason ? reason : "");
    if (manifest_save(m, err) == 0) return 0;
    m->num_failures--;
    free(f->path);
    free(f->reason);
    return -1;
}

int manifest_set_complete(cache_manifest *m, int complete, mvd_err *err) {
    int before = m->complete;
    m->complete = complete != 0;
    if (manifest_save(m, err) == 0) return 0;
    m->complete = before;
    return -1;
}
