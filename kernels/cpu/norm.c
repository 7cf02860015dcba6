/* norm.c: LayerNorm (eps 1e-6, with or without affine) and exact erf GELU on the CPU.
 * Row statistics are accumulated in double: the result is then the correctly rounded fp32 of the exact value,
 * the best a fp32 reference can be compared against. */
#include <math.h>

#include "kernels.h"

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
                       int64_t M, int64_t C) {
#pragma omp parallel for if (M * C > 65536)
    for (int64_t m = 0; m < M; m++) {
        const float *x = inp + m * C;
        double s = 0.0;
        for (int64_t c = 0; c < C; c++) s += x[c];
        double mu = s / (double)C, v = 0.0;
        for (int64_t c = 0; c < C; c++) {
            double d = x[c] - mu;
            v += d * d;
        }
        double rs = 1.0 / sqrt(v / (double)C + (double)MVD_LN_EPS);
        float *y = out + m * C;
        for (int64_t c = 0; c < C; c++) {
            float n = (float)((x[c] - mu) * rs);
            y[c] = w ? n * w[c] + b[c] : n;
        }
        if (mean) mean[m] = (float)mu;
        if (rstd) rstd[m] = (float)rs;
    }
}

/* dinp += rstd * (g - mean(g) - n * mean(g * n)) with g = dout * w and n the normalised input;
 * dw += sum_rows dout * n; db += sum_rows dout. */
void layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                        const float *mean, const float *rstd, int64_t M, int64_t C) {
#pragma omp parallel for if (M * C > 65536)
    for (int64_t m = 0; m < M; m++) {
        const float *x = inp + m * C, *dy = dout + m * C;
        double mu = mean[m], rs = rstd[m], sg = 0.0, sgn = 0.0;
        for (int64_t c = 0; c < C; c++) {
            double g = w ? (double)dy[c] * w[c] : dy[c];
            sg += g;
            sgn += g * ((x[c] - mu) * rs);
        }
        sg /= (double)C;
        sgn /= (double)C;
        float *dx = dinp + m * C;
        for (int64_t c = 0; c < C; c++) {
            double n = (x[c] - mu) * rs;
            double g = w ? (double)dy[c] * w[c] : dy[c];
            dx[c] += (float)(rs * (g - sg - n * sgn));
        }
    }
    if (!dw && !db) return;
    enum { COLS = 64 };
    int64_t nblocks = (C + COLS - 1) / COLS;
#pragma omp parallel for if (M * C > 65536)
    for (int64_t blk = 0; blk < nblocks; blk++) {
        double aw[COLS] = {0}, ab[COLS] = {0};
        int64_t c0 = blk * COLS, cn = C - c0 < COLS ? C - c0 : COLS;
        for (int64_t m = 0; m < M; m++) {
            const float *x = inp + m * C + c0, *dy = dout + m * C + c0;
            double mu = mean[m], rs = rstd[m];
            for (int64_t c = 0; c < cn; c++) {
                aw[c] += (double)dy[c] * ((x[c] - mu) * rs);
                ab[c] += dy[c];
            }
        }
        for (int64_t c = 0; c < cn; c++) {
            if (dw) dw[c0 + c] += (float)aw[c];
            if (db) db[c0 + c] += (float)ab[c];
        }
    }
}

void gelu_forward(float *out, const float *inp, int64_t n) {
#pragma omp parallel for if (n > 65536)
    for (int64_t i = 0; i < n; i++) {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + erff(x * (float)M_SQRT1_2));
    }
}

/* d/dx [x Phi(x)] = Phi(x) + x phi(x) */
void gelu_backward(float *dinp, const float *inp, const float *dout, int64_t n) {
    const float inv_sqrt_2pi = 0.39894228040143267794f;
#pragma omp parallel for if (n > 65536)
    for (int64_t i = 0; i < n; i++) {
        float x = inp[i];
        float cdf = 0.5f * (1.0f + erff(x * (float)M_SQRT1_2));
        float pdf = inv_sqrt_2pi * expf(-0.5f * x * x);
        dinp[i] += dout[i] * (cdf + x * pdf);
    }
}
