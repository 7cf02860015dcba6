/* optim.h: AdamW with the reference's parameter groups and learning-rate schedule, and gradient-norm
 * clipping, over a flat parameter table (params.h).
 *
 * Groups (the reference's get_parameter_groups): no weight decay for 1-D tensors, names ending in ".bias"
 * and the exact names pos_embed / cls_token / mask_token; everything else decays. The student's decoder mask
 * tokens are named mask_token_img / mask_token_vid, so they DO decay, as in the reference. Frozen tensors
 * (the position tables) are skipped. The per-tensor flag lives in param_entry.decay.
 *
 * The state (m, v with the parameter layout, and the step count) is plain data so a checkpoint can store
 * it and resume bit for bit. */
#ifndef MVD_OPTIM_H
#define MVD_OPTIM_H

#include <stdint.h>

#include "params.h"

typedef struct {
    const param_table *tab;
    float *m, *v;      /* device (tab->total) first and second moments, parameter layout */
    int64_t step;      /* updates done so far; the next update uses t = step + 1 */
    float beta1, beta2, eps; /* (0.9, 0.95, 1e-8) in the recipe */
} adamw_state;

void adamw_init(adamw_state *o, const param_table *tab, float beta1, float beta2, float eps);
void adamw_free(adamw_state *o);
/* One update of every trainable tensor: lr for all, wd for the decaying group. */
void adamw_step(adamw_state *o, float *params, const float *grads, float lr, float wd);

/* Global L2 norm of the trainable gradients. */
double grad_norm(const param_table *tab, const float *grads);
/* PyTorch's clip_grad_norm_: scales by max_norm / (norm + 1e-6) when that is < 1; returns the norm before. */
double clip_grad_norm(const param_table *tab, float *grads, double max_norm);

/* utils.cosine_scheduler of the reference, value at iteration it (0-based): iterations < warmup_iters follow
 * linspace(0, base, warmup_iters) (endpoint included), the rest cosine from base to final over
 * total_iters - warmup_iters. Iterations past the end hold final. */
double cosine_schedule(double base, double final, int64_t warmup_iters, int64_t total_iters, int64_t it);

#endif
