/* test_posembed_mask.c: the fixed position tables against their closed forms (and hand-computed values), and
 * tube masks: counts, repetition over time, determinism, independence from batch composition, uniformity. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mask.h"
#include "posembed.h"
#include "rng.h"
#include "test.h"
#include "util.h"

/* Closed form of one entry of a block sin-cos 1-D table of width Dp. */
static double sc1(int64_t Dp, double pos, int64_t j) {
    int64_t half = Dp / 2, k = j % half;
    double a = pos * pow(10000.0, -(double)k / (double)half);
    return j < half ? sin(a) : cos(a);
}

static void test_3d_table(void) {
    int64_t D = 48, T = 3, G = 4;
    float *x = xmalloc((size_t)(T * G * G * D) * sizeof(float));
    REQUIRE(posembed_3d_sincos(x, D, T, G, G) == 0, "3-D table refused D = 48");
    double e = 0;
    for (int64_t t = 0; t < T; t++)
        for (int64_t h = 0; h < G; h++)
            for (int64_t w = 0; w < G; w++)
                for (int64_t j = 0; j < D; j++) {
                    int64_t Dt = D / 4, Ds = D - Dt, js = j - Dt;
                    double want = j < Dt ? sc1(Dt, t, j) : js < Ds / 2 ? sc1(Ds / 2, w, js) : sc1(Ds / 2, h, js - Ds / 2);
                    e = fmax(e, fabs(x[((t * G + h) * G + w) * D + j] - want));
                }
    test_report("3-D table vs closed form: max abs err %.2e", e);
    CHECK(e < 1e-7, "3-D table: %.3e", e);
    /* hand values, D = 16 at (t=1, h=0, w=2): temporal width 4 -> [sin 1, sin .01, cos 1, cos .01];
     * spatial width 12: w part (6 dims) starts [sin 2, sin(2/10000^(1/3)), ...] */
    float y[16 * 1 * 1 * 3 * 2];
    posembed_3d_sincos(y, 16, 2, 1, 3);
    const float *r = y + ((1 * 1 + 0) * 3 + 2) * 16;
    double hand = fmax(fmax(fabs(r[0] - 0.8414709848), fabs(r[1] - 0.0099998333)),
                       fmax(fabs(r[2] - 0.5403023059), fabs(r[4] - 0.9092974268)));
    hand = fmax(hand, fabs(r[5] - sin(2.0 / pow(10000.0, 1.0 / 3.0))));
    hand = fmax(hand, fabs(r[10] - 0.0)); /* h = 0: sin 0 */
    test_report("3-D table hand values: max abs err %.2e", hand);
    CHECK(hand < 1e-7, "3-D hand values: %.3e", hand);
    CHECK(posembed_3d_sincos(x, 40, T, G, G) != 0, "D = 40 (not a multiple of 16) must be refused");
    free(x);
}

static void test_2d_table(void) {
    int64_t D = 24, G = 3;
    float *x = xmalloc((size_t)((1 + G * G) * D) * sizeof(float));
    REQUIRE(posembed_2d_sincos(x, D, G, G, 1) == 0, "2-D table refused");
    double e = 0;
    for (int64_t j = 0; j < D; j++) e = fmax(e, fabs(x[j])); /* cls row is zero */
    for (int64_t h = 0; h < G; h++)
        for (int64_t w = 0; w < G; w++)
            for (int64_t j = 0; j < D; j++) {
                double want = j < D / 2 ? sc1(D / 2, w, j) : sc1(D / 2, h, j - D / 2);
                e = fmax(e, fabs(x[(1 + h * G + w) * D + j] - want));
            }
    test_report("2-D table (cls row) vs closed form: max abs err %.2e", e);
    CHECK(e < 1e-7, "2-D table: %.3e", e);
    free(x);
}

static void test_1d_interleaved(void) {
    int64_t D = 10, n = 30;
    float *x = xmalloc((size_t)(n * D) * sizeof(float));
    REQUIRE(posembed_1d_interleaved(x, D, n) == 0, "1-D table refused");
    double e = 0;
    for (int64_t p = 0; p < n; p++)
        for (int64_t j = 0; j < D; j++) {
            double a = (double)p / pow(10000.0, 2.0 * (double)(j / 2) / (double)D);
            e = fmax(e, fabs(x[p * D + j] - (j % 2 ? cos(a) : sin(a))));
        }
    /* hand values: p = 1: [sin 1, cos 1, sin(1/10000^0.2), ...] */
    e = fmax(e, fabs(x[D + 0] - 0.8414709848));
    e = fmax(e, fabs(x[D + 1] - 0.5403023059));
    e = fmax(e, fabs(x[D + 2] - sin(1.0 / pow(10000.0, 0.2))));
    test_report("VideoMAE 1-D table vs closed form: max abs err %.2e", e);
    CHECK(e < 1e-7, "1-D table: %.3e", e);
    free(x);
}

static void test_mask_counts(void) {
    CHECK(mask_count_spatial(0.9, 196) == 176, "int(0.9 * 196) = 176, got %lld", (long long)mask_count_spatial(0.9, 196));
    CHECK(mask_count_spatial(0.75, 16) == 12, "int(0.75 * 16) = 12");
    uint8_t m[8 * 196];
    for (uint64_t clip = 0; clip < 20; clip++) {
        mask_tube(m, 8, 14, 14, 0.9, mask_key(7, 0, clip));
        int64_t total = 0, slice0 = 0;
        for (int64_t i = 0; i < 8 * 196; i++) total += m[i];
        for (int64_t i = 0; i < 196; i++) slice0 += m[i];
        CHECK(total == 1408 && slice0 == 176, "clip %llu: %lld masked (slice 0: %lld)", (unsigned long long)clip,
              (long long)total, (long long)slice0);
        for (int64_t t = 1; t < 8; t++) CHECK(!memcmp(m, m + t * 196, 196), "slice %lld differs from slice 0", (long long)t);
    }
}

static void test_mask_determinism(void) {
    uint8_t a[4 * 49], b[4 * 49], batch[3][4 * 49];
    mask_tube(a, 4, 7, 7, 0.9, mask_key(1, 3, 42));
    mask_tube(b, 4, 7, 7, 0.9, mask_key(1, 3, 42));
    CHECK(!memcmp(a, b, sizeof a), "the same key gave different masks");
    /* a clip's mask depends only on (seed, epoch, clip): computing it among other clips changes nothing */
    uint64_t clips[3] = {41, 42, 43};
    for (int i = 0; i < 3; i++) mask_tube(batch[i], 4, 7, 7, 0.9, mask_key(1, 3, clips[i]));
    CHECK(!memcmp(a, batch[1], sizeof a), "clip 42's mask changed with the batch around it");
    mask_tube(b, 4, 7, 7, 0.9, mask_key(1, 4, 42));
    CHECK(memcmp(a, b, sizeof a) != 0, "another epoch gave the same mask");
}

/* Every position is masked with probability k/hw: over n draws the count is binomial; 6 sigma bounds. */
static void test_mask_uniform(void) {
    enum { HW = 16, DRAWS = 4000 };
    int64_t count[HW] = {0};
    uint8_t m[HW];
    for (uint64_t i = 0; i < DRAWS; i++) {
        mask_tube(m, 1, 4, 4, 0.75, mask_key(9, 0, i));
        for (int j = 0; j < HW; j++) count[j] += m[j];
    }
    double p = 12.0 / 16.0, mean = DRAWS * p, sd = sqrt(DRAWS * p * (1 - p)), worst = 0;
    for (int j = 0; j < HW; j++) worst = fmax(worst, fabs(count[j] - mean) / sd);
    test_report("mask position frequencies: worst deviation %.2f sigma over %d draws", worst, DRAWS);
    CHECK(worst < 6.0, "mask not uniform: %.2f sigma", worst);
}

int main(void) {
    RUN(test_3d_table);
    RUN(test_2d_table);
    RUN(test_1d_interleaved);
    RUN(test_mask_counts);
    RUN(test_mask_determinism);
    RUN(test_mask_uniform);
    return test_summary();
}
