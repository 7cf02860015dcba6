/* linear.c: fully connected layers and column-range bias adds on the CPU (BLAS GEMMs).
 * cblas_sgemm is called outside OpenMP regions: the pthread OpenBLAS threads itself. */
#include <cblas.h>

#include "cpu_common.h"
#include "kernels.h"

/* out (M, N) = inp (M, K) . w (N, K)^T + b (N) */
void linear_forward(float *out, const float *inp, const float *w, const float *b, int64_t M, int64_t K, int64_t N) {
    if (M == 0 || N == 0) return;
    if (b) {
#pragma omp parallel for
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) out[m * N + n] = b[n];
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, blas_int(M, "M"), blas_int(N, "N"), blas_int(K, "K"), 1.0f,
                inp, (int)K, w, (int)K, b ? 1.0f : 0.0f, out, (int)N);
}

/* dinp (M, K) += dout (M, N) . w (N, K); dw (N, K) += dout^T . inp; db (N) += column sums of dout */
void linear_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                     int64_t M, int64_t K, int64_t N) {
    if (M == 0) return;
    int m = blas_int(M, "M"), k = blas_int(K, "K"), n = blas_int(N, "N");
    if (dinp) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, k, n, 1.0f, dout, n, w, k, 1.0f, dinp, k);
    if (dw) cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, k, m, 1.0f, dout, n, inp, k, 1.0f, dw, k);
    if (db) bias_add_backward(db, dout, M, N, 0, N);
}

void bias_add_forward(float *out, const float *b, int64_t M, int64_t ld, int64_t off, int64_t n) {
#pragma omp parallel for
    for (int64_t m = 0; m < M; m++) {
        float *row = out + m * ld + off;
        for (int64_t j = 0; j < n; j++) row[j] += b[j];
    }
}

/* Column sums in double, over blocks of columns so each thread streams whole rows (cache friendly). */
void bias_add_backward(float *db, const float *dout, int64_t M, int64_t ld, int64_t off, int64_t n) {
    enum { COLS = 64 };
    int64_t nblocks = (n + COLS - 1) / COLS;
#pragma omp parallel for if (M * n > 65536)
    for (int64_t blk = 0; blk < nblocks; blk++) {
        double acc[COLS] = {0};
        int64_t j0 = blk * COLS, jn = n - j0 < COLS ? n - j0 : COLS;
        for (int64_t m = 0; m < M; m++) {
            const float *row = dout + m * ld + off + j0;
            for (int64_t j = 0; j < jn; j++) acc[j] += row[j];
        }
        for (int64_t j = 0; j < jn; j++) db[j0 + j] += (float)acc[j];
    }
}
