/* optim.c: AdamW over a flat parameter table with the reference's groups, gradient norm and clipping, and
 * the reference's cosine learning-rate schedule. See optim.h. */
#include "optim.h"

#include <math.h>
#include <string.h>

#include "kernels.h"

void adamw_init(adamw_state *o, const param_table *tab, float beta1, float beta2, float eps) {
    memset(o, 0, sizeof *o);
    o->tab = tab;
    o->m = k_alloc(tab->total);
    o->v = k_alloc(tab->total);
    o->beta1 = beta1, o->beta2 = beta2, o->eps = eps;
}

void adamw_free(adamw_state *o) {
    k_free(o->m);
    k_free(o->v);
    memset(o, 0, sizeof *o);
}

void adamw_step(adamw_state *o, float *params, const float *grads, float lr, float wd) {
    o->step++;
    for (int64_t i = 0; i < o->tab->count; i++) {
        const param_entry *e = &o->tab->e[i];
        if (!e->trainable) continue;
        adamw_update(params + e->offset, grads + e->offset, o->m + e->offset, o->v + e->offset, e->numel, lr,
                     o->beta1, o->beta2, o->eps, e->decay ? wd : 0.0f, o->step);
    }
}

double grad_norm(const param_table *tab, const float *grads) {
    double s = 0.0;
    for (int64_t i = 0; i < tab->count; i++)
        if (tab->e[i].trainable) s += sum_squares(grads + tab->e[i].offset, tab->e[i].numel);
    return sqrt(s);
}

double clip_grad_norm(const param_table *tab, float *grads, double max_norm) {
    double norm = grad_norm(tab, grads);
    double coef = max_norm / (norm + 1e-6);
    if (coef < 1.0)
        for (int64_t i = 0; i < tab->count; i++)
            if (tab->e[i].trainable) scale_inplace(grads + tab->e[i].offset, (float)coef, tab->e[i].numel);
    return norm;
}

double cosine_schedule(double base, double final, int64_t warmup_iters, int64_t total_iters, int64_t it) {
    if (it < 0) it = 0;
    if (warmup_iters > 0 && it < warmup_iters) {
        /* np.linspace(0, base, warmup_iters): both ends included */
        if (warmup_iters == 1) return 0.0;
        if (it == warmup_iters - 1) return base;
        return (double)it * (base / (double)(warmup_iters - 1));
    }
    int64_t n = total_iters - (warmup_iters > 0 ? warmup_iters : 0), i = it - (warmup_iters > 0 ? warmup_iters : 0);
    if (n <= 0 || i >= n) return final;
    return final + 0.5 * (base - final) * (1.0 + cos(M_PI * (double)i / (double)n));
}
