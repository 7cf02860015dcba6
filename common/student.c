/* student.c: the MVD student and its two feature decoders: parameter table with the reference key names,
 * initialisation, checkpoints, forward, losses and backward over a batch. See student.h. */
#include "student.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "mask.h"
#include "posembed.h"
#include "rng.h"

static const char *const DEC_NAME[2] = {"img", "vid"};

/* ---- configuration ---------------------------------------------------------------------------------------- */

int student_config_preset(student_config *c, const char *size, mvd_err *err) {
    memset(c, 0, sizeof *c);
    c->num_frames = 16, c->input_size = 224, c->patch = 16, c->tubelet = 2;
    c->mlp_ratio = 4.0;
    c->img_dim = c->vid_dim = 768;
    c->drop_path = 0.1;
    c->mask_ratio = 0.9;
    c->max_batch = 1;
    if (!strcmp(size, "S")) {
        c->dim = 384, c->depth = 12, c->heads = 6, c->dec_dim = 384, c->dec_depth = 2, c->dec_heads = 6;
    } else if (!strcmp(size, "B")) {
        c->dim = 768, c->depth = 12, c->heads = 12, c->dec_dim = 768, c->dec_depth = 2, c->dec_heads = 12;
    } else if (!strcmp(size, "L")) {
        c->dim = 1024, c->depth = 24, c->heads = 16, c->dec_dim = 512, c->dec_depth = 4, c->dec_heads = 8;
    } else if (!strcmp(size, "H")) {
        c->dim = 1280, c->depth = 32, c->heads = 16, c->dec_dim = 640, c->dec_depth = 8, c->dec_heads = 8;
    } else {
        return mvd_fail(err, "unknown student size '%s' (expected S, B, L or H)", size);
    }
    return 0;
}

int student_config_check(const student_config *c, mvd_err *err) {
    if (c->dim <= 0 || c->heads <= 0 || c->dim % c->heads != 0 || c->dim % 16 != 0)
        return mvd_fail(err, "student: dim %lld must be a multiple of 16 and of heads %lld", (long long)c->dim,
                        (long long)c->heads);
    if (c->dec_dim <= 0 || c->dec_heads <= 0 || c->dec_dim % c->dec_heads != 0 || c->dec_dim % 16 != 0)
        return mvd_fail(err, "student: decoder dim %lld must be a multiple of 16 and of heads %lld",
                        (long long)c->dec_dim, (long long)c->dec_heads);
    if (c->depth <= 0 || c->dec_depth <= 0) return mvd_fail(err, "student: depths must be positive");
    if (c->patch <= 0 || c->input_size <= 0 || c->input_size % c->patch != 0)
        return mvd_fail(err, "student: input size %lld is not a multiple of patch %lld", (long long)c->input_size,
                        (long long)c->patch);
    if (c->tubelet <= 0 || c->num_frames <= 0 || c->num_frames % c->tubelet != 0)
        return mvd_fail(err, "student: %lld frames are not a multiple of tubelet %lld", (long long)c->num_frames,
                        (long long)c->tubelet);
    if (c->img_dim <= 0 || c->vid_dim <= 0 || c->mlp_ratio <= 0 || c->max_batch <= 0)
        return mvd_fail(err, "student: teacher dims, mlp ratio and max batch must be positive");
    if (c->drop_path < 0 || c->drop_path >= 1) return mvd_fail(err, "student: drop path %g outside [0, 1)", c->drop_path);
    int64_t g = c->input_size / c->patch, k = mask_count_spatial(c->mask_ratio, g * g);
    if (k <= 0 || k >= g * g)
        return mvd_fail(err, "student: mask ratio %g masks %lld of %lld positions (need at least one of each)",
                        c->mask_ratio, (long long)k, (long long)(g * g));
    return 0;
}

static vit_dims enc_dims(const student_config *c) {
    vit_dims d = {c->dim, c->depth, c->heads, (int64_t)((double)c->dim * c->mlp_ratio), VIT_QKV_BIAS_QV};
    return d;
}

static vit_dims dec_dims(const student_config *c) {
    vit_dims d = {c->dec_dim, c->dec_depth, c->dec_heads, (int64_t)((double)c->dec_dim * c->mlp_ratio),
                  VIT_QKV_BIAS_QV};
    return d;
}

/* ---- parameter table -------------------------------------------------------------------------------------- */

static void student_register(param_table *t, const student *s) {
    const student_config *c = &s->c;
    int64_t D = c->dim, Dd = c->dec_dim, N = s->n_tokens;
    vit_dims e = enc_dims(c), d = dec_dims(c);
    ptab_add(t, "patch_embed.proj.weight", 1, 5, (int64_t[]){D, 3, c->tubelet, c->patch, c->patch});
    ptab_add(t, "patch_embed.proj.bias", 1, 1, (int64_t[]){D});
    ptab_add(t, "pos_embed", 0, 3, (int64_t[]){1, N, D});
    vit_register(t, "", &e, 1);
    ptab_add(t, "norm.weight", 1, 1, (int64_t[]){D});
    ptab_add(t, "norm.bias", 1, 1, (int64_t[]){D});
    for (int k = 0; k < 2; k++) {
        char name[PARAM_NAME_MAX], prefix[32];
        int64_t Do = k == 0 ? c->img_dim : c->vid_dim;
        snprintf(name, sizeof name, "mask_token_%s", DEC_NAME[k]);
        ptab_add(t, name, 1, 3, (int64_t[]){1, 1, Dd});
        snprintf(name, sizeof name, "down_%s.weight", DEC_NAME[k]);
        ptab_add(t, name, 1, 2, (int64_t[]){Dd, D});
        snprintf(name, sizeof name, "down_%s.bias", DEC_NAME[k]);
        ptab_add(t, name, 1, 1, (int64_t[]){Dd});
        snprintf(prefix, sizeof prefix, "decoder_%s.", DEC_NAME[k]);
        vit_register(t, prefix, &d, 1);
        snprintf(name, sizeof name, "decoder_%s.norm.weight", DEC_NAME[k]);
        ptab_add(t, name, 1, 1, (int64_t[]){Dd});
        snprintf(name, sizeof name, "decoder_%s.norm.bias", DEC_NAME[k]);
        ptab_add(t, name, 1, 1, (int64_t[]){Dd});
        snprintf(name, sizeof name, "decoder_%s.head.weight", DEC_NAME[k]);
        ptab_add(t, name, 1, 2, (int64_t[]){Do, Dd});
        snprintf(name, sizeof name, "decoder_%s.head.bias", DEC_NAME[k]);
        ptab_add(t, name, 1, 1, (int64_t[]){Do});
        snprintf(name, sizeof name, "pos_embed_%s", DEC_NAME[k]);
        ptab_add(t, name, 0, 3, (int64_t[]){1, N, Dd});
    }
}

/* The offset of a named tensor; the names come from student_register, so a miss is a programming error. */
static int64_t off(const student *s, const char *fmt, const char *k) {
    char name[PARAM_NAME_MAX];
    snprintf(name, sizeof name, fmt, k);
    const param_entry *e = ptab_find(&s->tab, name);
    if (!e) {
        fprintf(stderr, "student: no tensor %s\n", name);
        abort();
    }
    return e->offset;
}

static void student_bind(student *s) {
    float *P = s->params, *G = s->grads;
    vit_dims e = enc_dims(&s->c), d = dec_dims(&s->c);
    s->patch_w = P + off(s, "patch_embed.proj.weight%s", ""), s->g_patch_w = G + off(s, "patch_embed.proj.weight%s", "");
    s->patch_b = P + off(s, "patch_embed.proj.bias%s", ""), s->g_patch_b = G + off(s, "patch_embed.proj.bias%s", "");
    s->pos = P + off(s, "pos_embed%s", "");
    s->norm_w = P + off(s, "norm.weight%s", ""), s->g_norm_w = G + off(s, "norm.weight%s", "");
    s->norm_b = P + off(s, "norm.bias%s", ""), s->g_norm_b = G + off(s, "norm.bias%s", "");
    vit_bind(s->enc.p, &s->tab, P, "", &e);
    vit_bind(s->enc.g, &s->tab, G, "", &e);
    for (int k = 0; k < 2; k++) {
        student_decoder *dc = &s->dec[k];
        const char *n = DEC_NAME[k];
        char prefix[32];
        snprintf(prefix, sizeof prefix, "decoder_%s.", n);
        dc->mask_token = P + off(s, "mask_token_%s", n), dc->g_mask_token = G + off(s, "mask_token_%s", n);
        dc->down_w = P + off(s, "down_%s.weight", n), dc->g_down_w = G + off(s, "down_%s.weight", n);
        dc->down_b = P + off(s, "down_%s.bias", n), dc->g_down_b = G + off(s, "down_%s.bias", n);
        dc->norm_w = P + off(s, "decoder_%s.norm.weight", n), dc->g_norm_w = G + off(s, "decoder_%s.norm.weight", n);
        dc->norm_b = P + off(s, "decoder_%s.norm.bias", n), dc->g_norm_b = G + off(s, "decoder_%s.norm.bias", n);
        dc->head_w = P + off(s, "decoder_%s.head.weight", n), dc->g_head_w = G + off(s, "decoder_%s.head.weight", n);
        dc->head_b = P + off(s, "decoder_%s.head.bias", n), dc->g_head_b = G + off(s, "decoder_%s.head.bias", n);
        dc->pos = P + off(s, "pos_embed_%s", n);
        vit_bind(dc->stack.p, &s->tab, P, prefix, &d);
        vit_bind(dc->stack.g, &s->tab, G, prefix, &d);
    }
}

/* ---- activations ------------------------------------------------------------------------------------------ */

static void student_layout(student *s, arena *a) {
    const student_config *c = &s->c;
    int64_t Bm = c->max_batch, N = s->n_tokens, Nv = s->n_visible, Nm = s->n_masked, D = c->dim, Dd = c->dec_dim;
    int64_t S = c->input_size;
    s->clips = arena_take(a, Bm * 3 * c->num_frames * S * S);
    s->patches = arena_take(a, Bm * N * s->patch_k);
    s->patches_vis = arena_take(a, Bm * Nv * s->patch_k);
    s->x0 = arena_take(a, Bm * Nv * D);
    vit_layout(&s->enc, a);
    s->enc_ln = arena_take(a, Bm * Nv * D);
    s->enc_mean = arena_take(a, Bm * Nv);
    s->enc_rstd = arena_take(a, Bm * Nv);
    s->d_enc_ln = arena_take(a, Bm * Nv * D);
    s->d_enc_out = arena_take(a, Bm * Nv * D);
    s->d_x0 = arena_take(a, Bm * Nv * D);
    s->keep_scale = arena_take(a, s->n_blocks_total * 2 * Bm);
    s->vis_rows = arena_take_i32(a, Bm * Nv);
    s->vis_tok = arena_take_i32(a, Bm * Nv);
    s->dec_order = arena_take_i32(a, Bm * N);
    s->tail_rows = arena_take_i32(a, Bm * Nm);
    s->mask_rows = arena_take_i32(a, Bm * Nm);
    for (int k = 0; k < 2; k++) {
        student_decoder *dc = &s->dec[k];
        int64_t Do = dc->out_dim;
        vit_layout(&dc->stack, a);
        dc->down = arena_take(a, Bm * Nv * Dd);
        dc->x = arena_take(a, Bm * N * Dd);
        dc->tail = arena_take(a, Bm * Nm * Dd);
        dc->tail_ln = arena_take(a, Bm * Nm * Dd);
        dc->tail_mean = arena_take(a, Bm * Nm);
        dc->tail_rstd = arena_take(a, Bm * Nm);
        dc->pred = arena_take(a, Bm * Nm * Do);
        dc->target = arena_take(a, Bm * N * Do);
        dc->target_m = arena_take(a, Bm * Nm * Do);
        dc->d_pred = arena_take(a, Bm * Nm * Do);
        dc->d_tail_ln = arena_take(a, Bm * Nm * Dd);
        dc->d_tail = arena_take(a, Bm * Nm * Dd);
        dc->d_out = arena_take(a, Bm * N * Dd);
        dc->d_x = arena_take(a, Bm * N * Dd);
        dc->d_down = arena_take(a, Bm * Nv * Dd);
    }
}

/* Everything but the parameter values: table, buffers, pointers. */
static student *student_alloc(const student_config *c, mvd_err *err) {
    if (student_config_check(c, err) != 0) return NULL;
    student *s = xcalloc(1, sizeof *s);
    s->c = *c;
    s->t = c->num_frames / c->tubelet;
    s->gh = s->gw = c->input_size / c->patch;
    s->n_tokens = s->t * s->gh * s->gw;
    s->n_masked = s->t * mask_count_spatial(c->mask_ratio, s->gh * s->gw);
    s->n_visible = s->n_tokens - s->n_masked;
    s->patch_k = 3 * c->tubelet * c->patch * c->patch;
    s->n_blocks_total = c->depth + 2 * c->dec_depth;
    ptab_init(&s->tab);
    student_register(&s->tab, s);
    s->params = k_alloc(s->tab.total);
    s->grads = k_alloc(s->tab.total);
    vit_dims e = enc_dims(c), d = dec_dims(c);
    vit_stack_init(&s->enc, &e, c->max_batch, s->n_visible, 1, 1);
    for (int k = 0; k < 2; k++) {
        vit_stack_init(&s->dec[k].stack, &d, c->max_batch, s->n_tokens, 1, 1);
        s->dec[k].out_dim = k == 0 ? c->img_dim : c->vid_dim;
    }
    student_bind(s);
    arena count = {NULL, 0};
    student_layout(s, &count);
    s->acts = k_alloc(count.used);
    arena real = {s->acts, 0};
    student_layout(s, &real);
    s->h_idx = xmalloc((size_t)(c->max_batch * (2 * s->n_visible + s->n_tokens + 2 * s->n_masked)) * sizeof(int32_t));
    s->h_keep = xmalloc((size_t)(s->n_blocks_total * 2 * c->max_batch) * sizeof(float));
    return s;
}

void student_free(student *s) {
    if (!s) return;
    k_free(s->params);
    k_free(s->grads);
    k_free(s->acts);
    vit_stack_free(&s->enc);
    for (int k = 0; k < 2; k++) vit_stack_free(&s->dec[k].stack);
    ptab_free(&s->tab);
    free(s->h_idx);
    free(s->h_keep);
    free(s);
}

/* ---- initialisation and checkpoints ----------------------------------------------------------------------- */

/* The fixed 3-D tables of one tensor ("pos_embed*"), into a host buffer. */
static void fill_pos(const student *s, float *x, const param_entry *e) {
    posembed_3d_sincos(x, e->shape[2], s->t, s->gh, s->gw);
}

static void init_student_tensor(const student *s, float *x, const param_entry *e, uint64_t seed) {
    uint64_t key = param_name_key(seed, e->name);
    if (!strncmp(e->name, "pos_embed", 9)) {
        fill_pos(s, x, e);
    } else if (!strncmp(e->name, "patch_embed.proj.", 17)) {
        /* the Conv3d keeps PyTorch's default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias */
        init_uniform(x, e->numel, 1.0 / sqrt((double)s->patch_k), key);
    } else if (!strncmp(e->name, "mask_token", 10)) {
        init_trunc_normal(x, e->numel, 0.02, -0.02, 0.02, key);
    } else if (param_init_default(x, e, seed) != 0) {
        fprintf(stderr, "student: no init rule for %s\n", e->name);
        abort();
    }
}

student *student_create(const student_config *c, uint64_t seed, mvd_err *err) {
    student *s = student_alloc(c, err);
    if (!s) return NULL;
    float *host = xcalloc((size_t)s->tab.total, sizeof(float));
    for (int64_t i = 0; i < s->tab.count; i++) init_student_tensor(s, host + s->tab.e[i].offset, &s->tab.e[i], seed);
    k_upload(s->params, host, s->tab.total * (int64_t)sizeof(float));
    free(host);
    return s;
}

student *student_load(const student_config *c, const char *path, mvd_err *err) {
    student *s = student_alloc(c, err);
    if (!s) return NULL;
    if (ptab_load(&s->tab, s->params, path, NULL, err) != 0) {
        student_free(s);
        return NULL;
    }
    return s;
}

int student_save(const student *s, const char *path, const char *const *meta, mvd_err *err) {
    return ptab_save(&s->tab, s->params, path, meta, err);
}

void student_zero_grads(student *s) { k_zero(s->grads, s->tab.total); }

/* ---- drop path -------------------------------------------------------------------------------------------- */

/* torch.linspace(0, end, n)[i] in float32 (it fills from both ends), returned as the double .item() gives. */
static double linspace_f32(double end, int64_t n, int64_t i) {
    if (n == 1) return 0.0;
    float fend = (float)end, step = fend / (float)(n - 1);
    return i < n / 2 ? (double)(step * (float)i) : (double)(fend - step * (float)(n - 1 - i));
}

double student_block_rate(const student *s, int64_t i) {
    if (i < s->c.depth) return linspace_f32(s->c.drop_path, s->c.depth, i);
    return linspace_f32(s->c.drop_path, s->c.dec_depth, (i - s->c.depth) % s->c.dec_depth);
}

void student_draw_drop_keep(const student *s, uint64_t key, int64_t B, uint8_t *out) {
    for (int64_t i = 0; i < s->n_blocks_total; i++) {
        double keep_prob = 1.0 - student_block_rate(s, i);
        for (int64_t br = 0; br < 2; br++)
            for (int64_t b = 0; b < B; b++) {
                rng_state r;
                rng_init(&r, rng_key(key, (uint64_t)i, (uint64_t)br, (uint64_t)b));
                out[(i * 2 + br) * B + b] = rng_uniform(&r) < keep_prob;
            }
    }
}

/* ---- forward ---------------------------------------------------------------------------------------------- */

/* Index maps of the batch's masks, uploaded: visible rows, decoder order, decoder tail, masked rows. */
static int upload_masks(student *s, const uint8_t *masks, int64_t B, mvd_err *err) {
    int64_t N = s->n_tokens, Nv = s->n_visible, Nm = s->n_masked;
    int32_t *vis_rows = s->h_idx, *vis_tok = vis_rows + B * Nv, *order = vis_tok + B * Nv, *tail = order + B * N,
            *mrows = tail + B * Nm;
    for (int64_t b = 0; b < B; b++) {
        int64_t nv = 0, nm = 0;
        for (int64_t n = 0; n < N; n++) {
            if (masks[b * N + n]) {
                if (nm < Nm) mrows[b * Nm + nm] = (int32_t)(b * N + n), order[b * N + Nv + nm] = (int32_t)n;
                nm++;
            } else {
                if (nv < Nv) vis_rows[b * Nv + nv] = (int32_t)(b * N + n), vis_tok[b * Nv + nv] = (int32_t)n,
                             order[b * N + nv] = (int32_t)n;
                nv++;
            }
        }
        if (nm != Nm)
            return mvd_fail(err, "student: clip %lld of the batch has %lld masked tokens, expected %lld", (long long)b,
                            (long long)nm, (long long)Nm);
        for (int64_t j = 0; j < Nm; j++) tail[b * Nm + j] = (int32_t)(b * N + Nv + j);
    }
    k_upload(s->vis_rows, vis_rows, B * Nv * 4);
    k_upload(s->vis_tok, vis_tok, B * Nv * 4);
    k_upload(s->dec_order, order, B * N * 4);
    k_upload(s->tail_rows, tail, B * Nm * 4);
    k_upload(s->mask_rows, mrows, B * Nm * 4);
    return 0;
}

/* keep_scale (n_blocks_total, 2, B): 0 for a dropped branch, 1/(1-rate) for a kept one; rate 0 is identity. */
static void upload_keep(student *s, const uint8_t *drop_keep, int64_t B) {
    for (int64_t i = 0; i < s->n_blocks_total; i++) {
        double rate = student_block_rate(s, i);
        float scale = rate > 0.0 ? (float)(1.0 / (1.0 - rate)) : 1.0f;
        for (int64_t j = 0; j < 2 * B; j++) {
            int keep = rate <= 0.0 || !drop_keep || drop_keep[i * 2 * B + j];
            s->h_keep[i * 2 * B + j] = keep ? scale : 0.0f;
        }
    }
    k_upload(s->keep_scale, s->h_keep, s->n_blocks_total * 2 * B * (int64_t)sizeof(float));
}

static const float *keep_of(const student *s, int64_t first_block, int64_t B) {
    return s->keep_scale + first_block * 2 * B;
}

static double decoder_forward(student *s, int k, int64_t B) {
    student_decoder *dc = &s->dec[k];
    int64_t Nv = s->n_visible, Nm = s->n_masked, D = s->c.dim, Dd = s->c.dec_dim, Do = dc->out_dim;
    linear_forward(dc->down, s->enc_ln, dc->down_w, dc->down_b, B * Nv, D, Dd);
    concat_tokens_forward(dc->x, dc->down, dc->mask_token, dc->pos, s->dec_order, B, Nv, Nm, Dd, 0);
    const float *last = vit_forward(&dc->stack, dc->x, B, keep_of(s, s->c.depth + k * s->c.dec_depth, B));
    gather_rows(dc->tail, last, s->tail_rows, B * Nm, Dd);
    layernorm_forward(dc->tail_ln, dc->tail_mean, dc->tail_rstd, dc->tail, dc->norm_w, dc->norm_b, B * Nm, Dd);
    linear_forward(dc->pred, dc->tail_ln, dc->head_w, dc->head_b, B * Nm, Dd, Do);
    gather_rows(dc->target_m, dc->target, s->mask_rows, B * Nm, Do);
    dc->loss = smooth_l1_forward(dc->pred, dc->target_m, B * Nm * Do);
    return dc->loss;
}

int student_forward(student *s, const student_batch *b, student_losses *out, mvd_err *err) {
    const student_config *c = &s->c;
    int64_t B = b->B, N = s->n_tokens, Nv = s->n_visible, D = c->dim, S = c->input_size;
    s->last_batch = 0; /* no backward until this forward succeeds */
    if (B <= 0 || B > c->max_batch)
        return mvd_fail(err, "student: batch %lld outside 1..%lld", (long long)B, (long long)c->max_batch);
    if (upload_masks(s, b->masks, B, err) != 0) return -1;
    upload_keep(s, b->drop_keep, B);
    k_upload(s->clips, b->clips, B * 3 * c->num_frames * S * S * (int64_t)sizeof(float));
    k_upload(s->dec[0].target, b->target_img, B * N * c->img_dim * (int64_t)sizeof(float));
    k_upload(s->dec[1].target, b->target_vid, B * N * c->vid_dim * (int64_t)sizeof(float));
    /* encoder over the visible tokens */
    im2col_tubelet(s->patches, s->clips, B, 3, c->num_frames, S, S, c->tubelet, c->patch);
    gather_rows(s->patches_vis, s->patches, s->vis_rows, B * Nv, s->patch_k);
    linear_forward(s->x0, s->patches_vis, s->patch_w, s->patch_b, B * Nv, s->patch_k, D);
    add_pos_forward(s->x0, s->pos, s->vis_tok, B * Nv, D);
    s->enc_out = vit_forward(&s->enc, s->x0, B, keep_of(s, 0, B));
    layernorm_forward(s->enc_ln, s->enc_mean, s->enc_rstd, s->enc_out, s->norm_w, s->norm_b, B * Nv, D);
    out->loss_img = decoder_forward(s, 0, B);
    out->loss_vid = decoder_forward(s, 1, B);
    out->loss = (double)b->w_img * out->loss_img + (double)b->w_vid * out->loss_vid;
    s->last_batch = B;
    s->last_w[0] = b->w_img, s->last_w[1] = b->w_vid;
    return 0;
}

void student_predictions(const student *s, float *pred_img, float *pred_vid) {
    int64_t rows = s->last_batch * s->n_masked;
    if (pred_img) k_download(pred_img, s->dec[0].pred, rows * s->dec[0].out_dim * (int64_t)sizeof(float));
    if (pred_vid) k_download(pred_vid, s->dec[1].pred, rows * s->dec[1].out_dim * (int64_t)sizeof(float));
}

/* ---- backward --------------------------------------------------------------------------------------------- */

/* Adds the decoder's share of the encoder-output gradient into s->d_enc_ln. */
static void decoder_backward(student *s, int k, int64_t B) {
    student_decoder *dc = &s->dec[k];
    int64_t N = s->n_tokens, Nv = s->n_visible, Nm = s->n_masked, D = s->c.dim, Dd = s->c.dec_dim, Do = dc->out_dim;
    k_zero(dc->d_pred, B * Nm * Do);
    smooth_l1_backward(dc->d_pred, dc->pred, dc->target_m, B * Nm * Do, s->last_w[k]);
    k_zero(dc->d_tail_ln, B * Nm * Dd);
    linear_backward(dc->d_tail_ln, dc->g_head_w, dc->g_head_b, dc->d_pred, dc->tail_ln, dc->head_w, B * Nm, Dd, Do);
    k_zero(dc->d_tail, B * Nm * Dd);
    layernorm_backward(dc->d_tail, dc->g_norm_w, dc->g_norm_b, dc->d_tail_ln, dc->tail, dc->norm_w, dc->tail_mean,
                       dc->tail_rstd, B * Nm, Dd);
    k_zero(dc->d_out, B * N * Dd);
    scatter_add_rows(dc->d_out, dc->d_tail, s->tail_rows, B * Nm, Dd);
    k_zero(dc->d_x, B * N * Dd);
    vit_backward(&dc->stack, dc->d_x, dc->d_out, dc->x, B, keep_of(s, s->c.depth + k * s->c.dec_depth, B));
    k_zero(dc->d_down, B * Nv * Dd);
    concat_tokens_backward(dc->d_down, dc->g_mask_token, dc->d_x, B, Nv, Nm, Dd, 0);
    linear_backward(s->d_enc_ln, dc->g_down_w, dc->g_down_b, dc->d_down, s->enc_ln, dc->down_w, B * Nv, D, Dd);
}

void student_backward(student *s) {
    int64_t B = s->last_batch, Nv = s->n_visible, D = s->c.dim;
    if (B == 0) return; /* the last forward failed: nothing to differentiate */
    k_zero(s->d_enc_ln, B * Nv * D);
    decoder_backward(s, 0, B);
    decoder_backward(s, 1, B);
    k_zero(s->d_enc_out, B * Nv * D);
    layernorm_backward(s->d_enc_out, s->g_norm_w, s->g_norm_b, s->d_enc_ln, s->enc_out, s->norm_w, s->enc_mean,
                       s->enc_rstd, B * Nv, D);
    k_zero(s->d_x0, B * Nv * D);
    vit_backward(&s->enc, s->d_x0, s->d_enc_out, s->x0, B, keep_of(s, 0, B));
    /* the position table is frozen and the pixels are data: only the patch embedding's weights get gradients */
    linear_backward(NULL, s->g_patch_w, s->g_patch_b, s->d_x0, s->patches_vis, s->patch_w, B * Nv, s->patch_k, D);
}
