/* teacher.c: the frozen image (MAE) and video (VideoMAE) teachers: parameter tables with the reference key
 * names, strict loading, forward to the pre-norm last-block features, and seeded random weight files. */
#include "teacher.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "posembed.h"

/* ---- configuration ---------------------------------------------------------------------------------------- */

int teacher_config_preset(teacher_config *c, teacher_kind kind, const char *size, mvd_err *err) {
    memset(c, 0, sizeof *c);
    c->kind = kind;
    c->mlp_ratio = 4.0;
    c->patch = 16;
    c->input_size = 224;
    c->num_frames = 16;
    c->tubelet = 2;
    c->max_batch = 1;
    if (!strcmp(size, "B")) {
        c->dim = 768, c->depth = 12, c->heads = 12;
    } else if (!strcmp(size, "L")) {
        c->dim = 1024, c->depth = 24, c->heads = 16;
    } else if (!strcmp(size, "H")) {
        c->dim = 1280, c->depth = 32, c->heads = 16;
        if (kind == TEACHER_IMAGE) c->patch = 14, c->input_size = 196; /* ViT-H/14 keeps the 14 x 14 grid */
    } else {
        return mvd_fail(err, "unknown teacher size '%s' (expected B, L or H)", size);
    }
    return 0;
}

static int config_check(const teacher_config *c, mvd_err *err) {
    const char *kind = c->kind == TEACHER_IMAGE ? "image teacher" : "video teacher";
    if (c->dim <= 0 || c->depth <= 0 || c->heads <= 0 || c->dim % c->heads != 0)
        return mvd_fail(err, "%s: dim %lld must be a positive multiple of heads %lld", kind, (long long)c->dim,
                        (long long)c->heads);
    if (c->patch <= 0 || c->input_size <= 0 || c->input_size % c->patch != 0)
        return mvd_fail(err, "%s: input size %lld is not a multiple of patch %lld", kind, (long long)c->input_size,
                        (long long)c->patch);
    if (c->tubelet <= 0 || c->num_frames <= 0 || c->num_frames % c->tubelet != 0)
        return mvd_fail(err, "%s: %lld frames are not a multiple of tubelet %lld", kind, (long long)c->num_frames,
                        (long long)c->tubelet);
    if (c->kind == TEACHER_IMAGE && c->dim % 4 != 0)
        return mvd_fail(err, "image teacher: dim %lld must be a multiple of 4 (2-D sin-cos table)", (long long)c->dim);
    if (c->mlp_ratio <= 0 || c->max_batch <= 0) return mvd_fail(err, "%s: bad mlp ratio or max batch", kind);
    return 0;
}

int64_t teacher_input_numel(const teacher_config *c) {
    int64_t S = c->input_size;
    return c->kind == TEACHER_IMAGE ? (c->num_frames / c->tubelet) * 3 * S * S : 3 * c->num_frames * S * S;
}

int64_t teacher_tokens(const teacher_config *c) {
    int64_t g = c->input_size / c->patch;
    return (c->num_frames / c->tubelet) * g * g;
}

static vit_dims teacher_dims(const teacher_config *c) {
    vit_dims d = {c->dim, c->depth, c->heads, (int64_t)((double)c->dim * c->mlp_ratio),
                  c->kind == TEACHER_IMAGE ? VIT_QKV_BIAS_FULL : VIT_QKV_BIAS_QV};
    return d;
}

/* The tensors a weight file must hold, in reference order. */
static void teacher_register(param_table *tab, const teacher_config *c) {
    int64_t D = c->dim, p = c->patch;
    vit_dims d = teacher_dims(c);
    if (c->kind == TEACHER_IMAGE) {
        ptab_add(tab, "cls_token", 0, 3, (int64_t[]){1, 1, D});
        ptab_add(tab, "patch_embed.proj.weight", 0, 4, (int64_t[]){D, 3, p, p});
        ptab_add(tab, "patch_embed.proj.bias", 0, 1, (int64_t[]){D});
        vit_register(tab, "", &d, 0);
        ptab_add(tab, "norm.weight", 0, 1, (int64_t[]){D});
        ptab_add(tab, "norm.bias", 0, 1, (int64_t[]){D});
    } else {
        ptab_add(tab, "encoder.patch_embed.proj.weight", 0, 5, (int64_t[]){D, 3, c->tubelet, p, p});
        ptab_add(tab, "encoder.patch_embed.proj.bias", 0, 1, (int64_t[]){D});
        vit_register(tab, "encoder.", &d, 0);
        ptab_add(tab, "encoder.norm.weight", 0, 1, (int64_t[]){D});
        ptab_add(tab, "encoder.norm.bias", 0, 1, (int64_t[]){D});
    }
}

/* Keys of the reference checkpoints that a teacher leaves unused on purpose. */
static int image_ignored(const char *name) { return !strcmp(name, "pos_embed"); }
static int video_ignored(const char *name) {
    return !strncmp(name, "decoder.", 8) || !strncmp(name, "encoder_to_decoder.", 19) || !strcmp(name, "mask_token");
}

/* ---- construction ----------------------------------------------------------------------------------------- */

static float *param(teacher *t, const char *name) { return t->params + ptab_find(&t->tab, name)->offset; }

/* Patch rows per sequence: the sequence without the image teacher's cls row. */
static int64_t patch_rows(const teacher *t) { return t->c.kind == TEACHER_IMAGE ? t->seq - 1 : t->seq; }

static void teacher_layout(teacher *t, arena *a) {
    int64_t Bs = t->c.max_batch * t->n_seq_per_clip, g2 = patch_rows(t), D = t->c.dim;
    t->input = arena_take(a, t->c.max_batch * teacher_input_numel(&t->c));
    t->patches = arena_take(a, Bs * g2 * t->patch_k);
    t->embed = arena_take(a, Bs * g2 * D);
    t->x = arena_take(a, Bs * t->seq * D);
    t->out = arena_take(a, t->c.max_batch * t->n_tokens * D);
    t->pos = arena_take(a, t->seq * D);
    t->pos_idx = arena_take_i32(a, Bs * t->seq);
    t->out_idx = arena_take_i32(a, t->c.max_batch * t->n_tokens);
    vit_layout(&t->stack, a);
}

/* Fixed tables and index maps, computed on the host once and uploaded. */
static void teacher_fill_tables(teacher *t) {
    int64_t Bs = t->c.max_batch * t->n_seq_per_clip, g2 = patch_rows(t), D = t->c.dim;
    float *pos = xmalloc((size_t)(t->seq * D) * sizeof *pos);
    if (t->c.kind == TEACHER_IMAGE)
        posembed_2d_sincos(pos, D, t->gh, t->gw, 1);
    else
        posembed_1d_interleaved(pos, D, t->seq);
    k_upload(t->pos, pos, t->seq * D * (int64_t)sizeof(float));
    free(pos);
    int32_t *idx = xmalloc((size_t)(Bs * t->seq) * sizeof *idx);
    for (int64_t r = 0; r < Bs * t->seq; r++) idx[r] = (int32_t)(r % t->seq);
    k_upload(t->pos_idx, idx, Bs * t->seq * (int64_t)sizeof *idx);
    /* targets: every patch row of every sequence, skipping the image teacher's cls row */
    int64_t skip = t->c.kind == TEACHER_IMAGE ? 1 : 0, n = 0;
    for (int64_t s = 0; s < Bs; s++)
        for (int64_t j = 0; j < g2; j++) idx[n++] = (int32_t)(s * t->seq + skip + j);
    k_upload(t->out_idx, idx, n * (int64_t)sizeof *idx);
    free(idx);
}

teacher *teacher_load(const teacher_config *c, const char *path, mvd_err *err) {
    if (config_check(c, err) != 0) return NULL;
    teacher *t = xcalloc(1, sizeof *t);
    t->c = *c;
    t->t = c->num_frames / c->tubelet;
    t->gh = t->gw = c->input_size / c->patch;
    t->n_tokens = t->t * t->gh * t->gw;
    int image = c->kind == TEACHER_IMAGE;
    t->seq = image ? 1 + t->gh * t->gw : t->n_tokens;
    t->n_seq_per_clip = image ? t->t : 1;
    t->patch_k = 3 * (image ? 1 : c->tubelet) * c->patch * c->patch;
    ptab_init(&t->tab);
    teacher_register(&t->tab, c);
    t->params = k_alloc(t->tab.total);
    if (ptab_load(&t->tab, t->params, path, image ? image_ignored : video_ignored, err) != 0) {
        teacher_free(t);
        return NULL;
    }
    const char *pre = image ? "" : "encoder.";
    char name[PARAM_NAME_MAX];
    snprintf(name, sizeof name, "%spatch_embed.proj.weight", pre);
    t->patch_w = param(t, name);
    snprintf(name, sizeof name, "%spatch_embed.proj.bias", pre);
    t->patch_b = param(t, name);
    snprintf(name, sizeof name, "%snorm.weight", pre);
    t->norm_w = param(t, name);
    snprintf(name, sizeof name, "%snorm.bias", pre);
    t->norm_b = param(t, name);
    if (image) t->cls_token = param(t, "cls_token");
    vit_dims d = teacher_dims(c);
    vit_stack_init(&t->stack, &d, c->max_batch * t->n_seq_per_clip, t->seq, 0, 0);
    vit_bind(t->stack.p, &t->tab, t->params, pre, &d);
    arena count = {NULL, 0};
    teacher_layout(t, &count);
    t->acts = k_alloc(count.used);
    arena real = {t->acts, 0};
    teacher_layout(t, &real);
    teacher_fill_tables(t);
    return t;
}

void teacher_free(teacher *t) {
    if (!t) return;
    k_free(t->params);
    k_free(t->acts);
    vit_stack_free(&t->stack);
    ptab_free(&t->tab);
    free(t);
}

/* ---- forward ---------------------------------------------------------------------------------------------- */

int teacher_forward(teacher *t, const float *input, int64_t B, int norm_feature, float *out, mvd_err *err) {
    if (B <= 0 || B > t->c.max_batch)
        return mvd_fail(err, "teacher_forward: batch %lld outside 1..%lld", (long long)B, (long long)t->c.max_batch);
    int64_t D = t->c.dim, S = t->c.input_size, Bs = B * t->n_seq_per_clip, g2 = t->gh * t->gw;
    k_upload(t->input, input, B * teacher_input_numel(&t->c) * (int64_t)sizeof(float));
    const float *x;
    if (t->c.kind == TEACHER_IMAGE) {
        /* each frame is an image: (Bs, 3, S, S) is the T = kt = 1 case of the tubelet im2col */
        im2col_tubelet(t->patches, t->input, Bs, 3, 1, S, S, 1, t->c.patch);
        linear_forward(t->embed, t->patches, t->patch_w, t->patch_b, Bs * g2, t->patch_k, D);
        concat_tokens_forward(t->x, t->embed, t->cls_token, t->pos, t->pos_idx, Bs, g2, 1, D, 1);
        x = t->x;
    } else {
        im2col_tubelet(t->patches, t->input, B, 3, t->c.num_frames, S, S, t->c.tubelet, t->c.patch);
        linear_forward(t->embed, t->patches, t->patch_w, t->patch_b, B * t->n_tokens, t->patch_k, D);
        add_pos_forward(t->embed, t->pos, t->pos_idx, B * t->n_tokens, D);
        x = t->embed;
    }
    const float *last = vit_forward(&t->stack, x, Bs, NULL);
    gather_rows(t->out, last, t->out_idx, B * t->n_tokens, D);
    if (norm_feature) layernorm_forward(t->out, NULL, NULL, t->out, NULL, NULL, B * t->n_tokens, D);
    k_download(out, t->out, B * t->n_tokens * D * (int64_t)sizeof(float));
    return 0;
}

/* ---- random weights --------------------------------------------------------------------------------------- */

/* The reference init of the tensors not covered by param_init_default. patch_fan_in = 3*kt*p*p. */
static void init_teacher_tensor(float *x, const param_entry *e, int image, int64_t patch_fan_in, uint64_t seed) {
    uint64_t key = param_name_key(seed, e->name);
    int is_patch = strstr(e->name, "patch_embed.proj.") != NULL;
    if (!is_patch && param_init_default(x, e, seed) == 0) return;
    if (!strcmp(e->name, "cls_token")) {
        init_normal(x, e->numel, 0.02, key); /* MAE: normal_(std=.02) */
    } else if (image && !strcmp(e->name, "patch_embed.proj.weight")) {
        /* MAE: xavier-uniform on the weight viewed as (D, 3*p*p) */
        init_uniform(x, e->numel, sqrt(6.0 / (double)(patch_fan_in + e->shape[0])), key);
    } else {
        /* the patch-embedding conv's own defaults (kaiming-uniform a = sqrt 5 and its bias rule): both
         * U(-1/sqrt(fan_in), 1/sqrt(fan_in)); MAE keeps the default for the bias */
        init_uniform(x, e->numel, 1.0 / sqrt((double)patch_fan_in), key);
    }
}

int teacher_write_random(const teacher_config *c, uint64_t seed, const char *path, const char *provenance,
                         mvd_err *err) {
    if (config_check(c, err) != 0) return -1;
    param_table tab;
    ptab_init(&tab);
    teacher_register(&tab, c);
    int image = c->kind == TEACHER_IMAGE;
    int64_t g = c->input_size / c->patch, D = c->dim;
    int64_t patch_fan_in = 3 * (image ? 1 : c->tubelet) * c->patch * c->patch;
    float *host = xcalloc((size_t)tab.total, sizeof(float));
    float *pos = xmalloc((size_t)((1 + g * g) * D) * sizeof(float));
    st_writer w;
    st_writer_init(&w);
    for (int64_t i = 0; i < tab.count; i++) {
        const param_entry *e = &tab.e[i];
        float *x = host + e->offset;
        init_teacher_tensor(x, e, image, patch_fan_in, seed);
        st_writer_add(&w, e->name, ST_F32, e->ndim, e->shape, x);
    }
    if (image) {
        /* MAE checkpoints carry their fixed table; ours is ignored on load but written for a faithful layout */
        posembed_2d_sincos(pos, D, g, g, 1);
        st_writer_add(&w, "pos_embed", ST_F32, 3, (int64_t[]){1, 1 + g * g, D}, pos);
    }
    char seed_str[32];
    snprintf(seed_str, sizeof seed_str, "%llu", (unsigned long long)seed);
    st_writer_meta(&w, "format", image ? "mae_vit" : "videomae_pretrain");
    st_writer_meta(&w, "seed", seed_str);
    if (provenance) st_writer_meta(&w, "provenance", provenance);
    int rc = st_writer_save(&w, path, err);
    st_writer_free(&w);
    free(host);
    free(pos);
    ptab_free(&tab);
    return rc;
}
