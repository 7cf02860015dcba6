/* vit.c: the pre-norm ViT block stack (see vit.h): parameter naming, activation layout, forward and backward
 * side by side. Everything numeric goes through kernels.h. */
#include "vit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

/* ---- parameters ------------------------------------------------------------------------------------------- */

static void reg(param_table *t, int trainable, const char *prefix, int64_t i, const char *leaf, int ndim, int64_t d0,
                int64_t d1) {
    char name[PARAM_NAME_MAX];
    snprintf(name, sizeof name, "%sblocks.%lld.%s", prefix, (long long)i, leaf);
    int64_t shape[2] = {d0, d1};
    ptab_add(t, name, trainable, ndim, shape);
}

void vit_register(param_table *t, const char *prefix, const vit_dims *d, int trainable) {
    int64_t D = d->dim, Hd = d->hidden;
    for (int64_t i = 0; i < d->depth; i++) {
        reg(t, trainable, prefix, i, "norm1.weight", 1, D, 0);
        reg(t, trainable, prefix, i, "norm1.bias", 1, D, 0);
        reg(t, trainable, prefix, i, "attn.qkv.weight", 2, 3 * D, D);
        if (d->qkv_bias == VIT_QKV_BIAS_FULL) {
            reg(t, trainable, prefix, i, "attn.qkv.bias", 1, 3 * D, 0);
        } else {
            reg(t, trainable, prefix, i, "attn.q_bias", 1, D, 0);
            reg(t, trainable, prefix, i, "attn.v_bias", 1, D, 0);
        }
        reg(t, trainable, prefix, i, "attn.proj.weight", 2, D, D);
        reg(t, trainable, prefix, i, "attn.proj.bias", 1, D, 0);
        reg(t, trainable, prefix, i, "norm2.weight", 1, D, 0);
        reg(t, trainable, prefix, i, "norm2.bias", 1, D, 0);
        reg(t, trainable, prefix, i, "mlp.fc1.weight", 2, Hd, D);
        reg(t, trainable, prefix, i, "mlp.fc1.bias", 1, Hd, 0);
        reg(t, trainable, prefix, i, "mlp.fc2.weight", 2, D, Hd);
        reg(t, trainable, prefix, i, "mlp.fc2.bias", 1, D, 0);
    }
}

static float *at(const param_table *t, float *buf, const char *prefix, int64_t i, const char *leaf) {
    char name[PARAM_NAME_MAX];
    snprintf(name, sizeof name, "%sblocks.%lld.%s", prefix, (long long)i, leaf);
    const param_entry *e = ptab_find(t, name);
    if (!e) {
        fprintf(stderr, "vit_bind: no tensor %s in the table\n", name);
        abort();
    }
    return buf + e->offset;
}

void vit_bind(vit_block_params *p, const param_table *t, float *buf, const char *prefix, const vit_dims *d) {
    for (int64_t i = 0; i < d->depth; i++) {
        vit_block_params *b = &p[i];
        memset(b, 0, sizeof *b);
        b->norm1_w = at(t, buf, prefix, i, "norm1.weight");
        b->norm1_b = at(t, buf, prefix, i, "norm1.bias");
        b->qkv_w = at(t, buf, prefix, i, "attn.qkv.weight");
        if (d->qkv_bias == VIT_QKV_BIAS_FULL) {
            b->qkv_b = at(t, buf, prefix, i, "attn.qkv.bias");
        } else {
            b->q_bias = at(t, buf, prefix, i, "attn.q_bias");
            b->v_bias = at(t, buf, prefix, i, "attn.v_bias");
        }
        b->proj_w = at(t, buf, prefix, i, "attn.proj.weight");
        b->proj_b = at(t, buf, prefix, i, "attn.proj.bias");
        b->norm2_w = at(t, buf, prefix, i, "norm2.weight");
        b->norm2_b = at(t, buf, prefix, i, "norm2.bias");
        b->fc1_w = at(t, buf, prefix, i, "mlp.fc1.weight");
        b->fc1_b = at(t, buf, prefix, i, "mlp.fc1.bias");
        b->fc2_w = at(t, buf, prefix, i, "mlp.fc2.weight");
        b->fc2_b = at(t, buf, prefix, i, "mlp.fc2.bias");
    }
}

/* ---- memory ----------------------------------------------------------------------------------------------- */

void vit_stack_init(vit_stack *s, const vit_dims *d, int64_t max_batch, int64_t n_tokens, int train, int has_grads) {
    memset(s, 0, sizeof *s);
    s->d = *d;
    s->max_batch = max_batch;
    s->n_tokens = n_tokens;
    s->train = train;
    s->p = xcalloc((size_t)d->depth, sizeof *s->p);
    s->g = has_grads ? xcalloc((size_t)d->depth, sizeof *s->g) : NULL;
    s->a = xcalloc((size_t)(train ? d->depth : 1), sizeof *s->a);
}

void vit_stack_free(vit_stack *s) {
    free(s->p);
    free(s->g);
    free(s->a);
    memset(s, 0, sizeof *s);
}

void vit_layout(vit_stack *s, arena *a) {
    int64_t M = s->max_batch * s->n_tokens, D = s->d.dim, Hd = s->d.hidden, N = s->n_tokens;
    int64_t n_sets = s->train ? s->d.depth : 1;
    for (int64_t i = 0; i < n_sets; i++) {
        vit_block_acts *b = &s->a[i];
        b->ln1 = arena_take(a, M * D);
        b->ln1_mean = arena_take(a, M);
        b->ln1_rstd = arena_take(a, M);
        b->qkv = arena_take(a, M * 3 * D);
        b->probs = arena_take(a, s->max_batch * s->d.heads * N * N);
        b->atty = arena_take(a, M * D);
        b->res1 = arena_take(a, M * D);
        b->ln2 = arena_take(a, M * D);
        b->ln2_mean = arena_take(a, M);
        b->ln2_rstd = arena_take(a, M);
        b->fc1 = arena_take(a, M * Hd);
        b->gelu = arena_take(a, M * Hd);
        b->out = arena_take(a, M * D);
    }
    s->branch = arena_take(a, M * D);
    if (!s->train) {
        s->ping = arena_take(a, M * D);
        return;
    }
    s->d_res = arena_take(a, M * D);
    s->d_branch = arena_take(a, M * D);
    s->d_atty = arena_take(a, M * D);
    s->d_qkv = arena_take(a, M * 3 * D);
    s->d_ln = arena_take(a, M * D);
    s->d_fc1 = arena_take(a, M * Hd);
    s->d_gelu = arena_take(a, M * Hd);
    s->att_scratch = arena_take(a, N * N);
}

/* ---- forward ---------------------------------------------------------------------------------------------- */

static void block_forward(const vit_stack *s, const vit_block_params *p, vit_block_acts *a, float *out,
                          const float *x, int64_t B, const float *keep_attn, const float *keep_mlp) {
    int64_t N = s->n_tokens, M = B * N, D = s->d.dim, Hd = s->d.hidden;
    layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, x, p->norm1_w, p->norm1_b, M, D);
    linear_forward(a->qkv, a->ln1, p->qkv_w, p->qkv_b, M, D, 3 * D); /* (M, 3D) */
    if (p->q_bias) {
        bias_add_forward(a->qkv, p->q_bias, M, 3 * D, 0, D);
        bias_add_forward(a->qkv, p->v_bias, M, 3 * D, 2 * D, D);
    }
    attention_forward(a->atty, a->probs, a->qkv, B, N, D, s->d.heads);
    linear_forward(s->branch, a->atty, p->proj_w, p->proj_b, M, D, D);
    residual_forward(a->res1, x, s->branch, keep_attn, B, N * D);
    layernorm_forward(a->ln2, a->ln2_mean, a->ln2_rstd, a->res1, p->norm2_w, p->norm2_b, M, D);
    linear_forward(a->fc1, a->ln2, p->fc1_w, p->fc1_b, M, D, Hd); /* (M, Hd) */
    gelu_forward(a->gelu, a->fc1, M * Hd);
    linear_forward(s->branch, a->gelu, p->fc2_w, p->fc2_b, M, Hd, D);
    residual_forward(out, a->res1, s->branch, keep_mlp, B, N * D);
}

float *vit_forward(vit_stack *s, const float *x, int64_t B, const float *keep_scale) {
    const float *in = x;
    for (int64_t i = 0; i < s->d.depth; i++) {
        vit_block_acts *a = &s->a[s->train ? i : 0];
        const float *ka = keep_scale ? keep_scale + (i * 2 + 0) * B : NULL;
        const float *km = keep_scale ? keep_scale + (i * 2 + 1) * B : NULL;
        /* inference reuses one set of buffers: outputs alternate so a block never overwrites its input */
        float *out = s->train || i % 2 == 0 ? a->out : s->ping;
        block_forward(s, &s->p[i], a, out, in, B, ka, km);
        in = out;
    }
    return (float *)in;
}

/* ---- backward --------------------------------------------------------------------------------------------- */

/* d_res holds the gradient of the block output on entry and of the block input on exit. */
static void block_backward(vit_stack *s, const vit_block_params *p, vit_block_params *g, const vit_block_acts *a,
                           const float *x, int64_t B, const float *keep_attn, const float *keep_mlp) {
    int64_t N = s->n_tokens, M = B * N, D = s->d.dim, Hd = s->d.hidden;
    /* MLP branch: out = res1 + keep * fc2(gelu(fc1(ln2(res1)))) */
    k_zero(s->d_branch, M * D);
    residual_backward(s->d_branch, s->d_res, keep_mlp, B, N * D);
    k_zero(s->d_gelu, M * Hd);
    linear_backward(s->d_gelu, g->fc2_w, g->fc2_b, s->d_branch, a->gelu, p->fc2_w, M, Hd, D);
    k_zero(s->d_fc1, M * Hd);
    gelu_backward(s->d_fc1, a->fc1, s->d_gelu, M * Hd);
    k_zero(s->d_ln, M * D);
    linear_backward(s->d_ln, g->fc1_w, g->fc1_b, s->d_fc1, a->ln2, p->fc1_w, M, D, Hd);
    layernorm_backward(s->d_res, g->norm2_w, g->norm2_b, s->d_ln, a->res1, p->norm2_w, a->ln2_mean, a->ln2_rstd, M,
                       D);
    /* attention branch: res1 = x + keep * proj(attention(qkv(ln1(x)))) */
    k_zero(s->d_branch, M * D);
    residual_backward(s->d_branch, s->d_res, keep_attn, B, N * D);
    k_zero(s->d_atty, M * D);
    linear_backward(s->d_atty, g->proj_w, g->proj_b, s->d_branch, a->atty, p->proj_w, M, D, D);
    k_zero(s->d_qkv, M * 3 * D);
    attention_backward(s->d_qkv, s->att_scratch, s->d_atty, a->qkv, a->probs, B, N, D, s->d.heads);
    if (g->q_bias) {
        bias_add_backward(g->q_bias, s->d_qkv, M, 3 * D, 0, D);
        bias_add_backward(g->v_bias, s->d_qkv, M, 3 * D, 2 * D, D);
    }
    k_zero(s->d_ln, M * D);
    linear_backward(s->d_ln, g->qkv_w, g->qkv_b, s->d_qkv, a->ln1, p->qkv_w, M, D, 3 * D);
    layernorm_backward(s->d_res, g->norm1_w, g->norm1_b, s->d_ln, x, p->norm1_w, a->ln1_mean, a->ln1_rstd, M, D);
}

void vit_backward(vit_stack *s, float *dx, const float *dout, const float *x, int64_t B, const float *keep_scale) {
    int64_t D = s->d.dim;
    k_copy(s->d_res, dout, B * s->n_tokens * D);
    for (int64_t i = s->d.depth - 1; i >= 0; i--) {
        const float *in = i == 0 ? x : s->a[i - 1].out;
        const float *ka = keep_scale ? keep_scale + (i * 2 + 0) * B : NULL;
        const float *km = keep_scale ? keep_scale + (i * 2 + 1) * B : NULL;
        block_backward(s, &s->p[i], &s->g[i], &s->a[i], in, B, ka, km);
    }
    /* the residual stream's gradient is the gradient of the stack input */
    residual_forward(dx, dx, s->d_res, NULL, B, s->n_tokens * D);
}
