/* teacher.h: the two frozen teachers whose per-token features are the distillation targets.
 *
 * - Image teacher (MAE ViT, timm layout): Conv2d patch embedding, cls token, full qkv bias, 2-D sin-cos
 *   positions RECOMPUTED at its own input grid with a zero row for cls (the checkpoint's pos_embed is ignored,
 *   as the reference recomputes it). It sees frames 0, tubelet, 2*tubelet, ... of each clip, resized to its
 *   own input size: input (B * T/tubelet, 3, S, S). Output: the last block's output before the final norm,
 *   cls dropped, as (B, t*h*w, D) in the student's (t, h, w) token order.
 * - Video teacher (VideoMAE encoder, keys prefixed "encoder."): tubelet Conv3d embedding, q/v-bias attention,
 *   VideoMAE's 1-D interleaved sinusoid positions, no cls. Input (B, 3, T, H, W); output the last block's
 *   output before the final norm, (B, N, D).
 * The final norm (norm.* / encoder.norm.*) must be present in a weight file and is loaded, but not applied:
 * MVD distils the pre-norm features. Teachers run in eval mode: no dropout, no drop path.
 *
 * Weight files are safetensors with the reference key names (tools convert .pth checkpoints). Keys a teacher
 * ignores by design (MAE's pos_embed; VideoMAE's decoder.*, encoder_to_decoder.*, mask_token) are listed in
 * the log; any other unexpected, missing or mis-shaped tensor is an error naming it. */
#ifndef MVD_TEACHER_H
#define MVD_TEACHER_H

#include <stdint.h>

#include "params.h"
#include "util.h"
#include "vit.h"

typedef enum { TEACHER_IMAGE = 0, TEACHER_VIDEO = 1 } teacher_kind;

typedef struct {
    teacher_kind kind;
    int64_t dim, depth, heads;
    double mlp_ratio;
    int64_t patch;      /* 16 (14 for the ViT-H/14 image teacher) */
    int64_t input_size; /* image teacher: its own input side (224, or 196 for ViT-H/14); video: the clip side */
    int64_t num_frames; /* frames of the student's clip (16) */
    int64_t tubelet;    /* the student's tubelet (2): image frames per clip = num_frames / tubelet */
    int64_t max_batch;  /* clips per teacher_forward call */
} teacher_config;

typedef struct {
    teacher_config c;
    int64_t t, gh, gw;        /* output token grid per clip: t = num_frames / tubelet */
    int64_t n_tokens;         /* t * gh * gw per clip */
    int64_t seq;              /* tokens per sequence the blocks see: 1 + gh*gw (image) or n_tokens (video) */
    int64_t n_seq_per_clip;   /* t (image: one sequence per frame) or 1 (video) */
    int64_t patch_k;          /* im2col width: 3 * p * p (image) or 3 * tubelet * p * p (video) */
    param_table tab;
    float *params;            /* device (tab.total) */
    vit_stack stack;
    /* pointers into params */
    float *patch_w, *patch_b; /* (D, patch_k), (D) */
    float *cls_token;         /* (D) image only */
    float *norm_w, *norm_b;   /* (D) loaded, not applied */
    /* activations (one arena) */
    float *acts;
    float *input;             /* (B * input numel per clip) uploaded input */
    float *patches;           /* (B*n_seq_per_clip*gh*gw, patch_k) */
    float *embed;             /* (B*n_seq_per_clip*gh*gw, D) */
    float *x;                 /* (B*n_seq_per_clip*seq, D) stack input */
    float *out;               /* (B*n_tokens, D) targets */
    float *pos;               /* (seq, D) fixed position table (image: row 0 is the zero cls row) */
    int32_t *pos_idx;         /* (max_batch*n_seq_per_clip*seq) position row of each stack row */
    int32_t *out_idx;         /* (max_batch*n_tokens) stack rows kept as targets (image: cls dropped) */
} teacher;

/* Sizes "B", "L", "H" with the reference geometry (16 x 224, tubelet 2; the "H" image teacher is ViT-H/14
 * at 196 px). max_batch is set to 1; every field may be changed afterwards for small configurations. */
int teacher_config_preset(teacher_config *c, teacher_kind kind, const char *size, mvd_err *err);
/* Input floats per clip: (T/tubelet)*3*S*S (image) or 3*T*S*S (video). */
int64_t teacher_input_numel(const teacher_config *c);
int64_t teacher_tokens(const teacher_config *c);

/* NULL on failure (err says which tensor or file). */
teacher *teacher_load(const teacher_config *c, const char *path, mvd_err *err);
void teacher_free(teacher *t);
/* input (B, input numel per clip) host, B <= max_batch; out (B, n_tokens, D) host. norm_feature: apply
 * LayerNorm without affine (eps 1e-6) per target token. */
int teacher_forward(teacher *t, const float *input, int64_t B, int norm_feature, float *out, mvd_err *err);

/* Writes a teacher with the reference initialisation (xavier-uniform Linear weights, zero biases, LayerNorm
 * 1/0; image: xavier patch embedding and normal(0.02) cls as MAE; video: PyTorch's default conv init), in the
 * reference layout (image: with its pos_embed table), as a pure function of seed. provenance goes into the
 * file's metadata. */
int teacher_write_random(const teacher_config *c, uint64_t seed, const char *path, const char *provenance,
                         mvd_err *err);

#endif
