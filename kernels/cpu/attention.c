/* attention.c: the multi-head self-attention core on the CPU: per (sample, head) GEMMs straight on the
 * strided q/k/v columns of the qkv buffer (no copies), with the row softmax in between. The probabilities are
 * saved for the backward; the backward needs one (N, N) scratch at a time. */
#include <cblas.h>
#include <math.h>

#include "cpu_common.h"
#include "kernels.h"

static void softmax_rows(float *p, int64_t N) {
#pragma omp parallel for if (N >= 64)
    for (int64_t i = 0; i < N; i++) {
        float *row = p + i * N;
        float mx = row[0];
        for (int64_t j = 1; j < N; j++) mx = row[j] > mx ? row[j] : mx;
        double s = 0.0;
        for (int64_t j = 0; j < N; j++) {
            row[j] = expf(row[j] - mx);
            s += row[j];
        }
        float inv = (float)(1.0 / s);
        for (int64_t j = 0; j < N; j++) row[j] *= inv;
    }
}

void attention_forward(float *out, float *probs, const float *qkv, int64_t B, int64_t N, int64_t D, int64_t H) {
    int64_t hd = D / H;
    float scale = 1.0f / sqrtf((float)hd);
    int n = blas_int(N, "N"), d3 = blas_int(3 * D, "3D"), d = (int)D, h = (int)hd;
    for (int64_t b = 0; b < B; b++) {
        for (int64_t hh = 0; hh < H; hh++) {
            const float *q = qkv + b * N * 3 * D + hh * hd, *k = q + D, *v = q + 2 * D;
            float *p = probs + (b * H + hh) * N * N;
            /* p (N, N) = scale * q k^T */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, h, scale, q, d3, k, d3, 0.0f, p, n);
            softmax_rows(p, N);
            /* out_h (N, hd) = p v */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, h, n, 1.0f, p, n, v, d3, 0.0f,
                        out + b * N * D + hh * hd, d);
        }
    }
}

/* dS = P * (dP - rowsum(P * dP)), in place over dP. */
static void softmax_backward_rows(float *dp, const float *p, int64_t N) {
#pragma omp parallel for if (N >= 64)
    for (int64_t i = 0; i < N; i++) {
        float *drow = dp + i * N;
        const float *prow = p + i * N;
        double s = 0.0;
        for (int64_t j = 0; j < N; j++) s += (double)prow[j] * drow[j];
        float fs = (float)s;
        for (int64_t j = 0; j < N; j++) drow[j] = prow[j] * (drow[j] - fs);
    }
}

void attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv, const float *probs,
                        int64_t B, int64_t N, int64_t D, int64_t H) {
    int64_t hd = D / H;
    float scale = 1.0f / sqrtf((float)hd);
    int n = blas_int(N, "N"), d3 = blas_int(3 * D, "3D"), d = (int)D, h = (int)hd;
    for (int64_t b = 0; b < B; b++) {
        for (int64_t hh = 0; hh < H; hh++) {
            const float *q = qkv + b * N * 3 * D + hh * hd, *k = q + D, *v = q + 2 * D;
            float *dq = dqkv + b * N * 3 * D + hh * hd, *dk = dq + D, *dv = dq + 2 * D;
            const float *p = probs + (b * H + hh) * N * N;
            const float *dy = dout + b * N * D + hh * hd;
            /* dP (N, N) = dy v^T */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, h, 1.0f, dy, d, v, d3, 0.0f, scratch, n);
            /* dv += P^T dy */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, h, n, 1.0f, p, n, dy, d, 1.0f, dv, d3);
            softmax_backward_rows(scratch, p, N);
            /* dq += scale * dS k; dk += scale * dS^T q */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, h, n, scale, scratch, n, k, d3, 1.0f, dq, d3);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, h, n, scale, scratch, n, q, d3, 1.0f, dk, d3);
        }
    }
}
