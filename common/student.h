/* student.h: the MVD student (video ViT encoder over the visible tokens) with its two feature decoders
 * (image-teacher and video-teacher targets), forward and backward for a batch, smooth-L1 losses, and
 * safetensors checkpoints with the reference key names.
 *
 * Forward for a batch of B clips (N tokens each, Nv visible, Nm masked, the same counts for every clip):
 *   patches of the visible tokens -> patch embedding (Conv3d as a GEMM) + 3-D sin-cos pos -> encoder blocks
 *   (drop path rates linspace(0, drop_path, depth)) -> norm -> for each decoder: down Linear, then
 *   [down(x_vis) + pos[vis] ; mask_token + pos[masked]] -> blocks (rates linspace(0, drop_path, dec_depth))
 *   -> last Nm rows -> norm -> head -> predictions (B, Nm, D_teacher) in ascending token order.
 *   Computing the patch embedding on the visible rows only equals embedding all and gathering (row-wise op).
 * Loss = w_img * smoothL1(pred_img, target_img[masked]) + w_vid * smoothL1(pred_vid, target_vid[masked]),
 * each a mean over B*Nm*D.
 *
 * Memory: params, grads (same layout) and activations are one allocation each; nothing is allocated in a
 * step. The three position tables are stored in the parameters (checkpoints carry them) but frozen. */
#ifndef MVD_STUDENT_H
#define MVD_STUDENT_H

#include <stdint.h>

#include "params.h"
#include "util.h"
#include "vit.h"

typedef struct {
    int64_t num_frames, input_size, patch, tubelet; /* clip geometry: 16 x 224, patch 16, tubelet 2 */
    int64_t dim, depth, heads;                      /* encoder */
    double mlp_ratio;
    int64_t dec_dim, dec_depth, dec_heads;          /* each decoder */
    int64_t img_dim, vid_dim;                       /* teacher feature dims (head outputs) */
    double drop_path;                               /* max stochastic depth rate */
    double mask_ratio;                              /* tube mask ratio (sets the masked count) */
    int64_t max_batch;                              /* clips per step */
} student_config;

/* One decoder (image or video target). */
typedef struct {
    vit_stack stack;
    int64_t out_dim;
    /* parameters / gradients (pointers into the flat buffers) */
    float *down_w, *down_b, *g_down_w, *g_down_b;       /* (Dd, D), (Dd) */
    float *mask_token, *g_mask_token;                   /* (Dd) */
    float *pos;                                         /* (N, Dd) frozen */
    float *norm_w, *norm_b, *g_norm_w, *g_norm_b;       /* (Dd) */
    float *head_w, *head_b, *g_head_w, *g_head_b;       /* (Do, Dd), (Do) */
    /* activations */
    float *down;                                        /* (B*Nv, Dd) */
    float *x;                                           /* (B*N, Dd) decoder input */
    float *tail, *tail_ln, *tail_mean, *tail_rstd;      /* (B*Nm, Dd), (B*Nm, Dd), (B*Nm), (B*Nm) */
    float *pred;                                        /* (B*Nm, Do) */
    float *target;                                      /* (B*N, Do) uploaded */
    float *target_m;                                    /* (B*Nm, Do) targets at the masked tokens */
    float *d_pred, *d_tail_ln, *d_tail, *d_out, *d_x, *d_down; /* gradients of the above */
    double loss;                                        /* last forward's smooth-L1 mean */
} student_decoder;

typedef struct {
    student_config c;
    int64_t t, gh, gw, n_tokens;     /* token grid: t = num_frames/tubelet, gh = gw = input_size/patch */
    int64_t n_masked, n_visible;     /* per clip */
    int64_t patch_k;                 /* 3 * tubelet * patch * patch */
    int64_t n_blocks_total;          /* depth + 2 * dec_depth */
    param_table tab;
    float *params, *grads;           /* device (tab.total) each, same layout */
    vit_stack enc;
    student_decoder dec[2];          /* 0 image, 1 video */
    float *patch_w, *patch_b, *g_patch_w, *g_patch_b; /* (D, patch_k), (D) */
    float *pos;                                       /* (N, D) frozen */
    float *norm_w, *norm_b, *g_norm_w, *g_norm_b;     /* (D) */
    /* activations (one arena) */
    float *acts;
    float *clips;                    /* (B, 3, T, H, W) uploaded */
    float *patches;                  /* (B*N, patch_k) */
    float *patches_vis;              /* (B*Nv, patch_k) */
    float *x0;                       /* (B*Nv, D) embedded visible tokens + pos */
    float *enc_ln, *enc_mean, *enc_rstd; /* (B*Nv, D), (B*Nv), (B*Nv) encoder output after norm */
    float *d_enc_ln, *d_enc_out, *d_x0;  /* (B*Nv, D) gradients */
    float *keep_scale;               /* (n_blocks_total, 2, B) drop-path factors */
    int32_t *vis_rows;               /* (B*Nv) row b*N + n of each visible token */
    int32_t *vis_tok;                /* (B*Nv) token index n of each visible token */
    int32_t *dec_order;              /* (B*N) token index of decoder row: visible ascending, then masked */
    int32_t *tail_rows;              /* (B*Nm) decoder rows b*N + Nv + j */
    int32_t *mask_rows;              /* (B*Nm) row b*N + n of each masked token */
    float *enc_out;                  /* (B*Nv, D) encoder stack output (owned by the stack) */
    int64_t last_batch;              /* B of the last forward */
    float last_w[2];                 /* loss weights of the last forward */
    /* host staging, allocated once */
    int32_t *h_idx;                  /* index maps before upload */
    float *h_keep;                   /* (n_blocks_total, 2, max_batch) */
} student;

typedef struct {
    int64_t B;                 /* clips, <= max_batch */
    const float *clips;        /* (B, 3, T, H, W) normalised */
    const uint8_t *masks;      /* (B, N) 1 = masked; exactly n_masked per clip */
    const float *target_img;   /* (B, N, img_dim) */
    const float *target_vid;   /* (B, N, vid_dim) */
    const uint8_t *drop_keep;  /* (n_blocks_total, 2, B) 1 keep, 0 drop; NULL keeps all */
    float w_img, w_vid;        /* loss weights (1, 1) */
} student_batch;

typedef struct {
    double loss, loss_img, loss_vid;
} student_losses;

/* Sizes "S", "B", "L", "H" at the reference geometry and recipe (drop path 0.1, mask ratio 0.9, teacher
 * dims 768, max_batch 1); every field may be changed afterwards. */
int student_config_preset(student_config *c, const char *size, mvd_err *err);
int student_config_check(const student_config *c, mvd_err *err);

/* A freshly initialised student (reference init) as a pure function of seed; NULL on failure. */
student *student_create(const student_config *c, uint64_t seed, mvd_err *err);
/* A student from a checkpoint written by student_save (or converted from the reference): every name and shape
 * is validated. */
student *student_load(const student_config *c, const char *path, mvd_err *err);
/* meta: NULL-terminated key/value pairs stored in the file's metadata (may be NULL). */
int student_save(const student *s, const char *path, const char *const *meta, mvd_err *err);
void student_free(student *s);

void student_zero_grads(student *s);
/* Forward (losses in out); keeps the activations for student_backward. */
int student_forward(student *s, const student_batch *b, student_losses *out, mvd_err *err);
/* Adds the gradients of the last forward's loss into s->grads (zero them first with student_zero_grads).
 * Does nothing when the last forward failed. */
void student_backward(student *s);
/* Last forward's predictions to the host: pred_img (B, Nm, img_dim), pred_vid (B, Nm, vid_dim); either may
 * be NULL. */
void student_predictions(const student *s, float *pred_img, float *pred_vid);

/* Drop-path decisions for a step: out (n_blocks_total, 2, B), bernoulli(1 - rate) per block, branch and
 * sample, with each stack's rates linspace(0, drop_path, depth); a pure function of key. */
void student_draw_drop_keep(const student *s, uint64_t key, int64_t B, uint8_t *out);
/* Drop-path rate of block i of the combined order (encoder, decoder_img, decoder_vid). */
double student_block_rate(const student *s, int64_t i);

#endif
