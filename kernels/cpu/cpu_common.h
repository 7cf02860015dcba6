/* cpu_common.h: helpers shared by the CPU kernels (BLAS size checks). */
#ifndef MVD_CPU_COMMON_H
#define MVD_CPU_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* cblas takes int sizes: a larger operand is a programming error, not an input error, so abort loudly. */
static inline int blas_int(int64_t n, const char *what) {
    if (n < 0 || n > 0x7fffffff) {
        fprintf(stderr, "kernels/cpu: %s = %lld does not fit a BLAS int\n", what, (long long)n);
        abort();
    }
    return (int)n;
}

#endif
