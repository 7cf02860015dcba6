/* params.c: flat named-tensor tables, their strict safetensors load/save, the layout arena and the seeded
 * initialisers. See params.h. */
#include "params.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "rng.h"

void ptab_init(param_table *t) { memset(t, 0, sizeof *t); }

void ptab_free(param_table *t) {
    free(t->e);
    memset(t, 0, sizeof *t);
}

/* The reference's get_parameter_groups rule (optim_factory.py): skip_list holds exactly these names. */
static int decay_rule(const char *name, int ndim) {
    size_t n = strlen(name);
    if (ndim == 1) return 0;
    if (n >= 5 && strcmp(name + n - 5, ".bias") == 0) return 0;
    if (!strcmp(name, "pos_embed") || !strcmp(name, "cls_token") || !strcmp(name, "mask_token")) return 0;
    return 1;
}

int64_t ptab_add(param_table *t, const char *name, int trainable, int ndim, const int64_t *shape) {
    if (t->count == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 64;
        param_entry *e = realloc(t->e, (size_t)t->cap * sizeof *e);
        if (!e) {
            fprintf(stderr, "ptab_add: out of memory\n");
            abort();
        }
        t->e = e;
    }
    param_entry *e = &t->e[t->count++];
    memset(e, 0, sizeof *e);
    if (strlen(name) >= PARAM_NAME_MAX || ndim > PARAM_MAX_DIMS || ndim < 1) {
        fprintf(stderr, "ptab_add: bad tensor %s (ndim %d)\n", name, ndim);
        abort();
    }
    strcpy(e->name, name);
    e->ndim = ndim;
    e->numel = 1;
    for (int i = 0; i < ndim; i++) {
        e->shape[i] = shape[i];
        e->numel *= shape[i];
    }
    /* 16-float alignment keeps every tensor on a 64-byte boundary for vector loads */
    e->offset = t->total;
    t->total += (e->numel + 15) & ~(int64_t)15;
    e->trainable = trainable;
    e->decay = decay_rule(name, ndim);
    return e->offset;
}

const param_entry *ptab_find(const param_table *t, const char *name) {
    for (int64_t i = 0; i < t->count; i++)
        if (!strcmp(t->e[i].name, name)) return &t->e[i];
    return NULL;
}

int64_t ptab_trainable_numel(const param_table *t) {
    int64_t n = 0;
    for (int64_t i = 0; i < t->count; i++)
        if (t->e[i].trainable) n += t->e[i].numel;
    return n;
}

static void shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t used = 0;
    used += (size_t)snprintf(buf + used, cap - used, "[");
    for (int i = 0; i < ndim && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%lld", i ? "," : "", (long long)shape[i]);
    if (used < cap) snprintf(buf + used, cap - used, "]");
}

/* Checks every file key against the table before reading anything, so a wrong file fails fast. */
static int check_keys(const param_table *t, const st_file *f, const char *path, ptab_ignore_fn ignore,
                      mvd_err *err) {
    for (int64_t i = 0; i < f->count; i++) {
        const st_tensor *s = &f->tensors[i];
        const param_entry *e = ptab_find(t, s->name);
        if (e) continue;
        if (ignore && ignore(s->name)) {
            mvd_info("%s: ignoring %s (not used by design)", path, s->name);
            continue;
        }
        return mvd_fail(err, "%s: unexpected tensor %s", path, s->name);
    }
    for (int64_t i = 0; i < t->count; i++) {
        const param_entry *e = &t->e[i];
        const st_tensor *s = st_find(f, e->name);
        if (!s) return mvd_fail(err, "%s: missing tensor %s", path, e->name);
        int same = s->ndim == e->ndim;
        for (int d = 0; same && d < e->ndim; d++) same = s->shape[d] == e->shape[d];
        if (!same) {
            char want[128], got[128];
            shape_str(want, sizeof want, e->ndim, e->shape);
            shape_str(got, sizeof got, s->ndim, s->shape);
            return mvd_fail(err, "%s: tensor %s has shape %s, expected %s", path, e->name, got, want);
        }
    }
    return 0;
}

int ptab_load(const param_table *t, float *buf, const char *path, ptab_ignore_fn ignore, mvd_err *err) {
    st_file f;
    if (st_open(&f, path, err) != 0) return -1;
    int rc = check_keys(t, &f, path, ignore, err);
    int64_t max_numel = 0;
    for (int64_t i = 0; i < t->count; i++)
        if (t->e[i].numel > max_numel) max_numel = t->e[i].numel;
    float *host = rc == 0 ? xmalloc((size_t)(max_numel ? max_numel : 1) * sizeof(float)) : NULL;
    for (int64_t i = 0; rc == 0 && i < t->count; i++) {
        const param_entry *e = &t->e[i];
        if (st_read_f32(&f, st_find(&f, e->name), host, err) != 0) {
            rc = mvd_fail_ctx(err, "%s: reading %s", path, e->name);
            break;
        }
        k_upload(buf + e->offset, host, e->numel * (int64_t)sizeof(float));
    }
    free(host);
    st_close(&f);
    return rc;
}

int ptab_save(const param_table *t, const float *buf, const char *path, const char *const *meta, mvd_err *err) {
    /* one host copy of the whole buffer: the writer borrows pointers until it saves */
    float *host = xmalloc((size_t)(t->total ? t->total : 1) * sizeof(float));
    k_download(host, buf, t->total * (int64_t)sizeof(float));
    st_writer w;
    st_writer_init(&w);
    for (int64_t i = 0; i < t->count; i++) {
        const param_entry *e = &t->e[i];
        st_writer_add(&w, e->name, ST_F32, e->ndim, e->shape, host + e->offset);
    }
    for (int64_t i = 0; meta && meta[i] && meta[i + 1]; i += 2) st_writer_meta(&w, meta[i], meta[i + 1]);
    int rc = st_writer_save(&w, path, err);
    st_writer_free(&w);
    free(host);
    return rc;
}

float *arena_take(arena *a, int64_t n) {
    float *p = a->base ? a->base + a->used : NULL;
    a->used += (n + 15) & ~(int64_t)15;
    return p;
}

int32_t *arena_take_i32(arena *a, int64_t n) {
    /* int32 and float have the same size, so the arena counts both in floats */
    return (int32_t *)arena_take(a, n);
}

/* FNV-1a of the name, mixed with the seed: a tensor's init depends only on (seed, name). */
uint64_t param_name_key(uint64_t seed, const char *name) {
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) h = (h ^ *p) * 1099511628211ULL;
    return rng_key(seed, h, 0x696e6974ULL /* "init" */, 0);
}

void init_uniform(float *x, int64_t n, double bound, uint64_t key) {
    rng_state r;
    rng_init(&r, key);
    for (int64_t i = 0; i < n; i++) x[i] = (float)((2.0 * rng_uniform(&r) - 1.0) * bound);
}

void init_trunc_normal(float *x, int64_t n, double std, double a, double b, uint64_t key) {
    rng_state r;
    rng_init(&r, key);
    for (int64_t i = 0; i < n; i++) {
        double v;
        do v = rng_normal(&r) * std;
        while (v < a || v > b);
        x[i] = (float)v;
    }
}

void init_normal(float *x, int64_t n, double std, uint64_t key) {
    rng_state r;
    rng_init(&r, key);
    for (int64_t i = 0; i < n; i++) x[i] = (float)(rng_normal(&r) * std);
}

void init_const(float *x, int64_t n, float value) {
    for (int64_t i = 0; i < n; i++) x[i] = value;
}

/* Linear weights xavier-uniform, biases (including q_bias / v_bias) zero, LayerNorm weights one: the
 * reference's _init_weights, which every model applies to these tensors. */
int param_init_default(float *x, const param_entry *e, uint64_t seed) {
    size_t n = strlen(e->name);
    int is_weight = n >= 7 && strcmp(e->name + n - 7, ".weight") == 0;
    int is_bias = (n >= 5 && strcmp(e->name + n - 5, ".bias") == 0) || (n >= 6 && strcmp(e->name + n - 6, "q_bias") == 0) ||
                  (n >= 6 && strcmp(e->name + n - 6, "v_bias") == 0);
    if (is_weight && e->ndim == 2) {
        double fan_out = (double)e->shape[0], fan_in = (double)e->shape[1];
        init_uniform(x, e->numel, sqrt(6.0 / (fan_in + fan_out)), param_name_key(seed, e->name));
        return 0;
    }
    if (is_weight && e->ndim == 1) {
        init_const(x, e->numel, 1.0f);
        return 0;
    }
    if (is_bias) {
        init_const(x, e->numel, 0.0f);
        return 0;
    }
    return -1;
}
