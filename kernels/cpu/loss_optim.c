/* loss_optim.c: the smooth-L1 distillation loss and the optimiser's elementwise pieces (AdamW update, sum of
 * squares for the gradient norm, scaling for clipping) on the CPU. Reductions are in double. */
#include <math.h>

#include "kernels.h"

double smooth_l1_forward(const float *pred, const float *target, int64_t n) {
    double s = 0.0;
#pragma omp parallel for reduction(+ : s) if (n > 65536)
    for (int64_t i = 0; i < n; i++) {
        double d = (double)pred[i] - (double)target[i], a = fabs(d);
        s += a < 1.0 ? 0.5 * d * d : a - 0.5;
    }
    return n > 0 ? s / (double)n : 0.0;
}

void smooth_l1_backward(float *dpred, const float *pred, const float *target, int64_t n, float scale) {
    if (n == 0) return;
    float k = (float)((double)scale / (double)n);
#pragma omp parallel for if (n > 65536)
    for (int64_t i = 0; i < n; i++) {
        float d = pred[i] - target[i];
        float g = d < -1.0f ? -1.0f : (d > 1.0f ? 1.0f : d);
        dpred[i] += k * g;
    }
}

void adamw_update(float *p, const float *g, float *m, float *v, int64_t n, float lr, float beta1, float beta2,
                  float eps, float wd, int64_t t) {
    double bc1 = 1.0 - pow((double)beta1, (double)t), bc2 = 1.0 - pow((double)beta2, (double)t);
    float step_size = (float)(lr / bc1), bc2_sqrt = (float)sqrt(bc2), decay = 1.0f - lr * wd;
#pragma omp parallel for if (n > 65536)
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i];
        p[i] *= decay;
        m[i] += (1.0f - beta1) * (gi - m[i]); /* lerp, as torch's exp_avg.lerp_ */
        v[i] = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        float denom = sqrtf(v[i]) / bc2_sqrt + eps;
        p[i] -= step_size * (m[i] / denom);
    }
}

double sum_squares(const float *x, int64_t n) {
    double s = 0.0;
#pragma omp parallel for reduction(+ : s) if (n > 65536)
    for (int64_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return s;
}

void scale_inplace(float *x, float s, int64_t n) {
#pragma omp parallel for if (n > 65536)
    for (int64_t i = 0; i < n; i++) x[i] *= s;
}
