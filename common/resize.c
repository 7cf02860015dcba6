/* resize.c: PIL-exact bilinear resize (see resize.h).
 *
 * Layout of the work: the filter taps of each pass are computed once per call (in double, as Pillow does, then
 * converted to 22-bit fixed point); the horizontal pass produces only the source rows the vertical pass reads,
 * into a uint8 intermediate; the vertical pass then writes dst. A pass whose size does not change is skipped, as
 * Pillow skips it (it would be the identity anyway). */
#include "resize.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PRECISION_BITS (32 - 8 - 2)

/* The taps of one pass: for output i, source indices first[i] .. first[i]+count[i]-1 with weights
 * weight[i*max_taps ...]. */
typedef struct {
    int *first, *count;
    int32_t *weight;
    int max_taps;
} filter_taps;

static double triangle(double x) {
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* Rounds half away from zero, as Pillow converts its normalised weights. */
static int32_t to_fixed(double w) {
    double scaled = w * (double)(1 << PRECISION_BITS);
    return (int32_t)(scaled < 0 ? scaled - 0.5 : scaled + 0.5);
}

static void taps_free(filter_taps *t) {
    free(t->first);
    free(t->count);
    free(t->weight);
}

static void taps_compute(int in_size, int out_size, filter_taps *t) {
    double scale = (double)in_size / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * filterscale; /* the triangle's support is 1 */
    t->max_taps = (int)ceil(support) * 2 + 1;
    t->first = xmalloc((size_t)out_size * sizeof *t->first);
    t->count = xmalloc((size_t)out_size * sizeof *t->count);
    t->weight = xcalloc((size_t)out_size * (size_t)t->max_taps, sizeof *t->weight);
    double *w = xmalloc((size_t)t->max_taps * sizeof *w);
    for (int i = 0; i < out_size; i++) {
        double center = (i + 0.5) * scale;
        int lo = (int)(center - support + 0.5);
        int hi = (int)(center + support + 0.5);
        if (lo < 0) lo = 0;
        if (hi > in_size) hi = in_size;
        int n = hi - lo;
        if (n > t->max_taps) n = t->max_taps; /* cannot happen; guards the arrays */
        double sum = 0.0;
        for (int k = 0; k < n; k++) {
            w[k] = triangle((k + lo - center + 0.5) / filterscale);
            sum += w[k];
        }
        for (int k = 0; k < n; k++) {
            double normalised = sum != 0.0 ? w[k] / sum : w[k];
            t->weight[(size_t)i * t->max_taps + k] = to_fixed(normalised);
        }
        t->first[i] = lo;
        t->count[i] = n;
    }
    free(w);
}

static inline uint8_t clip8(int32_t v) {
    if (v >= (1 << PRECISION_BITS << 8)) return 255;
    if (v <= 0) return 0;
    return (uint8_t)(v >> PRECISION_BITS);
}

/* Horizontal pass over rows [row0, row0+rows) of src into tmp (rows x out_w x 3). */
static void pass_horizontal(const uint8_t *src, size_t src_stride, int row0, int rows, const filter_taps *t,
                            int out_w, uint8_t *tmp) {
    for (int y = 0; y < rows; y++) {
        const uint8_t *in = src + (size_t)(row0 + y) * src_stride;
        uint8_t *out = tmp + (size_t)y * (size_t)out_w * 3;
        for (int x = 0; x < out_w; x++) {
            const int32_t *k = t->weight + (size_t)x * t->max_taps;
            const uint8_t *p = in + (size_t)t->first[x] * 3;
            int32_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
            for (int j = 0; j < t->count[x]; j++) {
                s0 += p[j * 3 + 0] * k[j];
                s1 += p[j * 3 + 1] * k[j];
                s2 += p[j * 3 + 2] * k[j];
            }
            out[x * 3 + 0] = clip8(s0);
            out[x * 3 + 1] = clip8(s1);
            out[x * 3 + 2] = clip8(s2);
        }
    }
}

/* Vertical pass: src rows are relative to row0 (the first row the horizontal pass produced). */
static void pass_vertical(const uint8_t *src, size_t src_stride, int row0, int w, const filter_taps *t, int out_h,
                          uint8_t *dst) {
    size_t row_bytes = (size_t)w * 3;
    for (int y = 0; y < out_h; y++) {
        const int32_t *k = t->weight + (size_t)y * t->max_taps;
        const uint8_t *base = src + (size_t)(t->first[y] - row0) * src_stride;
        uint8_t *out = dst + (size_t)y * row_bytes;
        for (size_t c = 0; c < row_bytes; c++) {
            int32_t s = 1 << (PRECISION_BITS - 1);
            for (int j = 0; j < t->count[y]; j++) s += base[(size_t)j * src_stride + c] * k[j];
            out[c] = clip8(s);
        }
    }
}

static void copy_rows(const uint8_t *src, size_t src_stride, int w, int h, uint8_t *dst) {
    for (int y = 0; y < h; y++) memcpy(dst + (size_t)y * (size_t)w * 3, src + (size_t)y * src_stride, (size_t)w * 3);
}

int resize_bilinear_pil(const uint8_t *src, int src_w, int src_h, size_t src_stride, uint8_t *dst, int dst_w,
                        int dst_h, mvd_err *err) {
    if (src_w <= 0 || src_h <= 0 || dst_w <= 0 || dst_h <= 0)
        return mvd_fail(err, "resize: invalid sizes %dx%d -> %dx%d", src_w, src_h, dst_w, dst_h);
    if (src_stride < (size_t)src_w * 3)
        return mvd_fail(err, "resize: row stride %zu shorter than %d RGB pixels", src_stride, src_w);
    int need_h = dst_w != src_w, need_v = dst_h != src_h;
    if (!need_h && !need_v) {
        copy_rows(src, src_stride, src_w, src_h, dst);
        return 0;
    }
    filter_taps th = {0}, tv = {0};
    if (need_v) taps_compute(src_h, dst_h, &tv);
    /* Only the source rows the vertical pass reads go through the horizontal pass. */
    int row0 = need_v ? tv.first[0] : 0;
    int row1 = need_v ? tv.first[dst_h - 1] + tv.count[dst_h - 1] : src_h;
    if (need_h) {
        taps_compute(src_w, dst_w, &th);
        if (!need_v) {
            pass_horizontal(src, src_stride, 0, src_h, &th, dst_w, dst);
        } else {
            uint8_t *tmp = xmalloc((size_t)(row1 - row0) * (size_t)dst_w * 3);
            pass_horizontal(src, src_stride, row0, row1 - row0, &th, dst_w, tmp);
            pass_vertical(tmp, (size_t)dst_w * 3, row0, dst_w, &tv, dst_h, dst);
            free(tmp);
        }
    } else {
        pass_vertical(src + (size_t)row0 * src_stride, src_stride, row0, src_w, &tv, dst_h, dst);
    }
    taps_free(&th);
    taps_free(&tv);
    return 0;
}
