/* movement.c: ops that move or combine rows without arithmetic of their own: drop-path residuals, row
 * gather/scatter (visible and masked tokens), position-table adds, token concatenation and the tubelet
 * im2col of the patch embeddings. */
#include "kernels.h"

void residual_forward(float *out, const float *x, const float *branch, const float *keep_scale, int64_t B,
                      int64_t S) {
    for (int64_t b = 0; b < B; b++) {
        float s = keep_scale ? keep_scale[b] : 1.0f;
        const float *xb = x + b * S, *yb = branch + b * S;
        float *ob = out + b * S;
#pragma omp parallel for if (S > 65536)
        for (int64_t i = 0; i < S; i++) ob[i] = xb[i] + s * yb[i];
    }
}

void residual_backward(float *dbranch, const float *dout, const float *keep_scale, int64_t B, int64_t S) {
    for (int64_t b = 0; b < B; b++) {
        float s = keep_scale ? keep_scale[b] : 1.0f;
        if (s == 0.0f) continue; /* dropped sample: no gradient reaches the branch */
        const float *db = dout + b * S;
        float *gb = dbranch + b * S;
#pragma omp parallel for if (S > 65536)
        for (int64_t i = 0; i < S; i++) gb[i] += s * db[i];
    }
}

void gather_rows(float *out, const float *inp, const int32_t *idx, int64_t M, int64_t C) {
#pragma omp parallel for if (M * C > 65536)
    for (int64_t i = 0; i < M; i++) {
        const float *src = inp + (int64_t)idx[i] * C;
        float *dst = out + i * C;
        for (int64_t c = 0; c < C; c++) dst[c] = src[c];
    }
}

/* idx has no repeats, so rows are disjoint and the loop parallelises without atomics. */
void scatter_add_rows(float *dinp, const float *dout, const int32_t *idx, int64_t M, int64_t C) {
#pragma omp parallel for if (M * C > 65536)
    for (int64_t i = 0; i < M; i++) {
        float *dst = dinp + (int64_t)idx[i] * C;
        const float *src = dout + i * C;
        for (int64_t c = 0; c < C; c++) dst[c] += src[c];
    }
}

void add_pos_forward(float *x, const float *pos, const int32_t *idx, int64_t M, int64_t C) {
#pragma omp parallel for if (M * C > 65536)
    for (int64_t i = 0; i < M; i++) {
        const float *p = pos + (int64_t)idx[i] * C;
        float *row = x + i * C;
        for (int64_t c = 0; c < C; c++) row[c] += p[c];
    }
}

void concat_tokens_forward(float *out, const float *x, const float *tok, const float *pos, const int32_t *pos_idx,
                           int64_t B, int64_t Nx, int64_t Nt, int64_t C, int tok_first) {
    int64_t N = Nx + Nt;
#pragma omp parallel for if (B * N * C > 65536)
    for (int64_t r = 0; r < B * N; r++) {
        int64_t b = r / N, i = r % N;
        int64_t xi = tok_first ? i - Nt : i; /* row of x, or < 0 / >= Nx for a token row */
        const float *src = (xi >= 0 && xi < Nx) ? x + (b * Nx + xi) * C : tok;
        const float *p = pos + (int64_t)pos_idx[r] * C;
        float *dst = out + r * C;
        for (int64_t c = 0; c < C; c++) dst[c] = src[c] + p[c];
    }
}

void concat_tokens_backward(float *dx, float *dtok, const float *dout, int64_t B, int64_t Nx, int64_t Nt, int64_t C,
                            int tok_first) {
    int64_t N = Nx + Nt, x0 = tok_first ? Nt : 0, t0 = tok_first ? 0 : Nx;
    if (dx) {
#pragma omp parallel for if (B * Nx * C > 65536)
        for (int64_t r = 0; r < B * Nx; r++) {
            int64_t b = r / Nx, i = r % Nx;
            const float *src = dout + (b * N + x0 + i) * C;
            float *dst = dx + r * C;
            for (int64_t c = 0; c < C; c++) dst[c] += src[c];
        }
    }
    if (dtok) {
#pragma omp parallel for if (B * Nt * C > 65536)
        for (int64_t c = 0; c < C; c++) {
            double s = 0.0;
            for (int64_t b = 0; b < B; b++)
                for (int64_t i = 0; i < Nt; i++) s += dout[(b * N + t0 + i) * C + c];
            dtok[c] += (float)s;
        }
    }
}

void im2col_tubelet(float *out, const float *inp, int64_t B, int64_t Cin, int64_t T, int64_t H, int64_t W, int64_t kt,
                    int64_t p) {
    int64_t nt = T / kt, nh = H / p, nw = W / p, K = Cin * kt * p * p;
    int64_t rows = B * nt * nh * nw;
#pragma omp parallel for if (rows * K > 65536)
    for (int64_t r = 0; r < rows; r++) {
        int64_t w0 = r % nw, h0 = (r / nw) % nh, t0 = (r / (nw * nh)) % nt, b = r / (nw * nh * nt);
        float *dst = out + r * K;
        for (int64_t c = 0; c < Cin; c++)
            for (int64_t dt = 0; dt < kt; dt++)
                for (int64_t dh = 0; dh < p; dh++) {
                    const float *src = inp + (((b * Cin + c) * T + t0 * kt + dt) * H + h0 * p + dh) * W + w0 * p;
                    for (int64_t dw = 0; dw < p; dw++) *dst++ = src[dw];
                }
    }
}
