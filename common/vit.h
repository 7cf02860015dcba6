/* vit.h: the pre-norm transformer block stack shared by the two teachers, the student encoder and the two
 * student decoders, with its forward and backward written once over kernels/kernels.h.
 *
 * Block (LayerNorm eps 1e-6, no layer scale):
 *   x = x + drop_path(proj(attention(qkv(norm1(x)))))
 *   x = x + drop_path(fc2(gelu(fc1(norm2(x)))))
 * The qkv bias is either full (MAE image teacher: attn.qkv.bias [3D]) or q/v only (VideoMAE and MVD:
 * attn.q_bias, attn.v_bias [D], the k bias fixed at zero).
 *
 * A stack works on B samples of N tokens each, laid out (B*N, D). In training mode it keeps every block's
 * activations for the backward; in inference mode one set of buffers is reused block after block. */
#ifndef MVD_VIT_H
#define MVD_VIT_H

#include <stdint.h>

#include "params.h"

typedef enum { VIT_QKV_BIAS_FULL = 0, VIT_QKV_BIAS_QV = 1 } vit_qkv_bias;

typedef struct {
    int64_t dim, depth, heads, hidden; /* hidden = int(dim * mlp_ratio) */
    vit_qkv_bias qkv_bias;
} vit_dims;

/* Pointers into a flat buffer (parameters, or gradients with the same layout). */
typedef struct {
    float *norm1_w, *norm1_b; /* (D) */
    float *qkv_w;             /* (3D, D) */
    float *qkv_b;             /* (3D) full bias, or NULL */
    float *q_bias, *v_bias;   /* (D) q/v biases, or NULL */
    float *proj_w, *proj_b;   /* (D, D), (D) */
    float *norm2_w, *norm2_b; /* (D) */
    float *fc1_w, *fc1_b;     /* (Hd, D), (Hd) */
    float *fc2_w, *fc2_b;     /* (D, Hd), (D) */
} vit_block_params;

/* Saved activations of one block, for M = B*N rows. */
typedef struct {
    float *ln1, *ln1_mean, *ln1_rstd; /* (M, D), (M), (M) */
    float *qkv;                       /* (M, 3D) */
    float *probs;                     /* (B, H, N, N) */
    float *atty;                      /* (M, D) attention output before proj */
    float *res1;                      /* (M, D) x + attention branch */
    float *ln2, *ln2_mean, *ln2_rstd; /* (M, D), (M), (M) */
    float *fc1;                       /* (M, Hd) before GELU */
    float *gelu;                      /* (M, Hd) */
    float *out;                       /* (M, D) block output */
} vit_block_acts;

typedef struct {
    vit_dims d;
    int64_t max_batch, n_tokens; /* activations are sized for max_batch samples of n_tokens */
    int train;                   /* 1: per-block activations and backward scratch */
    vit_block_params *p, *g;     /* [depth]; g is NULL for a frozen stack */
    vit_block_acts *a;           /* [depth] in training mode, [1] otherwise */
    float *branch;               /* (M, D) proj or fc2 output before the residual add */
    float *ping;                 /* (M, D) inference only: every other block's output */
    /* backward scratch (training mode only) */
    float *d_res;                /* (M, D) gradient of the residual stream */
    float *d_branch;             /* (M, D) */
    float *d_atty;               /* (M, D) */
    float *d_qkv;                /* (M, 3D) */
    float *d_ln;                 /* (M, D) */
    float *d_fc1, *d_gelu;       /* (M, Hd) */
    float *att_scratch;          /* (N, N) */
} vit_stack;

/* Adds the block tensors of a stack to a table: "<prefix>blocks.<i>.norm1.weight" ... in reference order. */
void vit_register(param_table *t, const char *prefix, const vit_dims *d, int trainable);
/* Points block i of p at the tensors named with prefix inside buf (a buffer laid out by t). */
void vit_bind(vit_block_params *p, const param_table *t, float *buf, const char *prefix, const vit_dims *d);

/* Lays out the stack's activations in an arena (see params.h: call with a counting arena, then a real one). */
void vit_layout(vit_stack *s, arena *a);
/* Allocates the block parameter pointer arrays; call before vit_bind/vit_layout. */
void vit_stack_init(vit_stack *s, const vit_dims *d, int64_t max_batch, int64_t n_tokens, int train, int has_grads);
void vit_stack_free(vit_stack *s);

/* x (B*N, D) -> the last block's output (returned; owned by the stack). keep_scale: device (depth, 2, B)
 * per-block, per-branch, per-sample drop-path factors, or NULL for none (teachers, evaluation). */
float *vit_forward(vit_stack *s, const float *x, int64_t B, const float *keep_scale);
/* dout (B*N, D): gradient of the last block's output; adds into dx (B*N, D) the gradient of the stack input x,
 * and into s->g the parameter gradients. Needs the activations of the matching vit_forward. */
void vit_backward(vit_stack *s, float *dx, const float *dout, const float *x, int64_t B, const float *keep_scale);

#endif
