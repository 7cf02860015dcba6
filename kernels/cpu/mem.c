/* mem.c: device memory for the CPU backend: "device" memory is host memory, aligned for vector loads.
 * Kept behind the kernels.h interface so the CUDA backend can swap in cudaMalloc/cudaMemcpy. */
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <omp.h>

#include "kernels.h"
#include "util.h"

void *k_alloc_bytes(int64_t n_bytes) {
    if (n_bytes < 0) {
        fprintf(stderr, "k_alloc_bytes: negative size %lld\n", (long long)n_bytes);
        abort();
    }
    /* aligned_alloc wants a multiple of the alignment */
    size_t n = ((size_t)n_bytes + 63) & ~(size_t)63;
    if (n == 0) n = 64;
    void *p = aligned_alloc(64, n);
    if (!p) {
        fprintf(stderr, "k_alloc_bytes: out of memory allocating %zu bytes\n", n);
        abort();
    }
    memset(p, 0, n);
    return p;
}

float *k_alloc(int64_t n_floats) { return (float *)k_alloc_bytes(n_floats * (int64_t)sizeof(float)); }

void k_free(void *p) { free(p); }

void k_zero(float *x, int64_t n) {
    if (n > 0) memset(x, 0, (size_t)n * sizeof(float));
}

void k_copy(float *dst, const float *src, int64_t n) {
    if (n > 0 && dst != src) memmove(dst, src, (size_t)n * sizeof(float));
}

void k_upload(void *dst_dev, const void *src_host, int64_t n_bytes) {
    if (n_bytes > 0) memcpy(dst_dev, src_host, (size_t)n_bytes);
}

void k_download(void *dst_host, const void *src_dev, int64_t n_bytes) {
    if (n_bytes > 0) memcpy(dst_host, src_dev, (size_t)n_bytes);
}

void k_sync(void) {}

void k_set_threads(int n) {
    if (n <= 0) return;
    omp_set_num_threads(n);
    openblas_set_num_threads(n); /* OpenBLAS's own thread pool does not follow OpenMP's setting */
}
