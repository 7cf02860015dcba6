/* kernels.h: the one interface to every numeric operation of the models (memory, forward and backward ops,
 * loss, optimiser update).
 *
 * Model code (common/vit.c, teacher.c, student.c, optim.c) never reads or writes parameter, gradient or
 * activation memory itself: it allocates it here, moves host data in and out with k_upload/k_download and
 * calls the ops below. kernels/cpu/ implements the interface in fp32 with OpenMP and BLAS (the readable
 * reference and test oracle); a CUDA implementation provides the same symbols, so the models run unchanged on
 * either backend.
 *
 * Conventions:
 * - Every pointer argument named like a tensor is "device" memory from k_alloc (on the CPU backend: host
 *   memory). Index arrays (int32) live in device memory too.
 * - Matrices are row-major. Shapes are given in comments as (rows, cols) or (B, N, C); sizes are int64_t.
 * - Forward ops overwrite their outputs.
 * - Every backward op ADDS into its gradient outputs (input gradients and parameter gradients alike), like
 *   llm.c: callers zero a gradient buffer before the first op that writes it. This makes branches that meet
 *   (the residual stream, one encoder output feeding two decoders) plain sums.
 * - LayerNorm eps is 1e-6 everywhere (MVD_LN_EPS). GELU is the exact erf form. */
#ifndef MVD_KERNELS_H
#define MVD_KERNELS_H

#include <stdint.h>

#define MVD_LN_EPS 1e-6f

/* ---- memory ---------------------------------------------------------------------------------------- */

/* Zero-filled device buffers; abort on exhaustion (like xmalloc). k_free(NULL) is a no-op. */
float *k_alloc(int64_t n_floats);
void *k_alloc_bytes(int64_t n_bytes);
void k_free(void *p);
void k_zero(float *x, int64_t n);
void k_copy(float *dst, const float *src, int64_t n); /* device to device */
void k_upload(void *dst_dev, const void *src_host, int64_t n_bytes);
void k_download(void *dst_host, const void *src_dev, int64_t n_bytes);
void k_sync(void); /* waits for queued work (no-op on the CPU) */
/* CPU threads for the ops (OpenMP loops and BLAS alike); n <= 0 keeps the default (all cores). */
void k_set_threads(int n);

/* ---- linear: out = inp W^T + b, W stored (out_features, in_features) as PyTorch does ---------------- */

/* out (M, N), inp (M, K), w (N, K), b (N) or NULL */
void linear_forward(float *out, const float *inp, const float *w, const float *b, int64_t M, int64_t K, int64_t N);
/* dinp (M, K) or NULL, dw (N, K), db (N) or NULL; dout (M, N) */
void linear_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                     int64_t M, int64_t K, int64_t N);

/* Adds a bias vector to a column range: out[m, off + j] += b[j] for j < n; out is (M, ld).
 * Used for the q/v biases of the VideoMAE/MVD attention (qkv bias = [q_bias, 0, v_bias]). */
void bias_add_forward(float *out, const float *b, int64_t M, int64_t ld, int64_t off, int64_t n);
/* db[j] += sum_m dout[m, off + j] */
void bias_add_backward(float *db, const float *dout, int64_t M, int64_t ld, int64_t off, int64_t n);

/* ---- layernorm over the last dim, eps 1e-6 ------------------------------------------------------------ */

/* out, inp (M, C); w, b (C) or both NULL (no affine: norm_feature); mean, rstd (M) or both NULL (not saved).
 * out may alias inp. */
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
                       int64_t M, int64_t C);
/* dinp (M, C); dw, db (C) or NULL (no affine); needs the saved mean and rstd. */
void layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                        const float *mean, const float *rstd, int64_t M, int64_t C);

/* ---- exact GELU: x * 0.5 * (1 + erf(x / sqrt 2)) ------------------------------------------------------ */

void gelu_forward(float *out, const float *inp, int64_t n);
void gelu_backward(float *dinp, const float *inp, const float *dout, int64_t n);

/* ---- multi-head self-attention core (no projections) --------------------------------------------------- */

/* qkv (B, N, 3D) laid out [q | k | v], each D = H heads x hd; probs (B, H, N, N) softmax(q k^T * hd^-0.5),
 * saved for the backward; out (B, N, D) with heads concatenated. */
void attention_forward(float *out, float *probs, const float *qkv, int64_t B, int64_t N, int64_t D, int64_t H);
/* dqkv (B, N, 3D); scratch (N, N) floats of workspace. */
void attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv, const float *probs,
                        int64_t B, int64_t N, int64_t D, int64_t H);

/* ---- residual with per-sample drop path -------------------------------------------------------------- */

/* out[b, i] = x[b, i] + keep_scale[b] * branch[b, i] over S elements per sample; keep_scale (B) holds
 * 0 for a dropped sample and 1/(1-rate) for a kept one; NULL means 1 (no drop path). out may alias x. */
void residual_forward(float *out, const float *x, const float *branch, const float *keep_scale, int64_t B,
                      int64_t S);
/* dbranch[b, i] += keep_scale[b] * dout[b, i]; the gradient into x is dout itself (the caller keeps it). */
void residual_backward(float *dbranch, const float *dout, const float *keep_scale, int64_t B, int64_t S);

/* ---- row movement --------------------------------------------------------------------------------------- */

/* out[i, :] = inp[idx[i], :]; out (M, C), idx (M) int32 */
void gather_rows(float *out, const float *inp, const int32_t *idx, int64_t M, int64_t C);
/* dinp[idx[i], :] += dout[i, :] (the backward of gather_rows; idx must not repeat) */
void scatter_add_rows(float *dinp, const float *dout, const int32_t *idx, int64_t M, int64_t C);
/* x[i, :] += pos[idx[i], :]; x (M, C), pos (P, C), idx (M). The position tables are frozen: no backward. */
void add_pos_forward(float *x, const float *pos, const int32_t *idx, int64_t M, int64_t C);

/* Concatenation of per-sample rows with a learned token repeated Nt times, plus a position table:
 *   tok_first == 0: out[b] = [x[b, 0..Nx) ; tok x Nt]   (the MVD decoder input: visible, then mask tokens)
 *   tok_first == 1: out[b] = [tok x Nt ; x[b, 0..Nx)]   (the MAE image teacher: cls, then patches)
 * and then out[b, i] += pos[pos_idx[b, i]]. out (B, Nx+Nt, C), x (B, Nx, C), tok (C), pos (P, C),
 * pos_idx (B, Nx+Nt) int32. */
void concat_tokens_forward(float *out, const float *x, const float *tok, const float *pos, const int32_t *pos_idx,
                           int64_t B, int64_t Nx, int64_t Nt, int64_t C, int tok_first);
/* dx (B, Nx, C) += its rows of dout; dtok (C) += sum of the token rows (either may be NULL). */
void concat_tokens_backward(float *dx, float *dtok, const float *dout, int64_t B, int64_t Nx, int64_t Nt, int64_t C,
                            int tok_first);

/* ---- patch embedding input: im2col for Conv3d / Conv2d with kernel = stride -------------------------- */

/* inp (B, Cin, T, H, W) -> out (B * T/kt * H/p * W/p, Cin*kt*p*p): rows in (b, t, h, w) order, columns in
 * PyTorch's weight order (c, kt, kh, kw), so the patch embedding is linear_forward with the conv weight viewed
 * as (D, Cin*kt*p*p). A Conv2d on (B, Cin, H, W) is the case T = kt = 1. */
void im2col_tubelet(float *out, const float *inp, int64_t B, int64_t Cin, int64_t T, int64_t H, int64_t W, int64_t kt,
                    int64_t p);

/* ---- loss --------------------------------------------------------------------------------------------- */

/* Smooth-L1 (beta 1) mean over n elements: returns the loss to the host (accumulated in double). */
double smooth_l1_forward(const float *pred, const float *target, int64_t n);
/* dpred[i] += scale * clamp(pred[i] - target[i], -1, 1) / n, i.e. the gradient of scale * mean. */
void smooth_l1_backward(float *dpred, const float *pred, const float *target, int64_t n, float scale);

/* ---- optimiser pieces ---------------------------------------------------------------------------------- */

/* PyTorch's AdamW (single-tensor form), step t >= 1:
 *   p *= 1 - lr*wd; m = lerp(m, g, 1-beta1); v = beta2*v + (1-beta2)*g*g;
 *   p -= (lr / (1-beta1^t)) * m / (sqrt(v) / sqrt(1-beta2^t) + eps) */
void adamw_update(float *p, const float *g, float *m, float *v, int64_t n, float lr, float beta1, float beta2,
                  float eps, float wd, int64_t t);
/* Sum of squares (accumulated in double), returned to the host; for the global gradient norm. */
double sum_squares(const float *x, int64_t n);
/* x *= s (gradient clipping) */
void scale_inplace(float *x, float s, int64_t n);

#endif
