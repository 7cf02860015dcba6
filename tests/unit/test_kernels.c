/* test_kernels.c: every op of kernels/kernels.h against finite differences (backward ops) or a direct
 * reference computation (ops without a backward), on the CPU backend.
 *
 * Gradient checks: a scalar L = sum(out * R) with fixed random R is differentiated both by the backward op
 * (dout = R) and by fp32 central differences with step h = 1e-2, L accumulated in double. The measure is
 * max|fd - analytic| / max|analytic| over the checked elements. fp32 rounding of the forward divided by h,
 * and the h^2 truncation term, bound it near 1e-5 at these sizes (measured: at most ~1.2e-5), so the
 * tolerance 1e-3 leaves two orders of margin while any wrong term (typically > 1e-1) fails.
 * Backward ops ADD into their outputs: every check starts from a non-zero gradient buffer and subtracts it. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "rng.h"
#include "test.h"
#include "util.h"

#define FD_STEP 1e-2f
#define FD_TOL 1e-3
#define FD_TOL_ATTN 1e-3

static rng_state R;

static float *randv(int64_t n, double scale) {
    float *x = k_alloc(n);
    for (int64_t i = 0; i < n; i++) x[i] = (float)((2.0 * rng_uniform(&R) - 1.0) * scale);
    return x;
}

/* The loss under test: runs the forward and returns sum(out * r) in double. */
typedef double (*loss_fn)(void *ctx);

static double dot(const float *a, const float *b, int64_t n) {
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* Compares the analytic gradient g (already net of its initial content) with central differences of f over
 * x; checks at most ~200 elements spread over x. */
static double fd_check(loss_fn f, void *ctx, float *x, const float *g, int64_t n) {
    int64_t stride = n > 200 ? n / 200 : 1;
    double max_err = 0.0, max_g = 0.0;
    for (int64_t i = 0; i < n; i += stride) {
        float keep = x[i];
        x[i] = keep + FD_STEP;
        double lp = f(ctx);
        x[i] = keep - FD_STEP;
        double lm = f(ctx);
        x[i] = keep;
        double fd = (lp - lm) / (2.0 * FD_STEP);
        double e = fabs(fd - g[i]);
        if (e > max_err) max_err = e;
        if (fabs(g[i]) > max_g) max_g = fabs(g[i]);
    }
    return max_g > 0 ? max_err / max_g : max_err;
}

/* A gradient buffer pre-filled with noise; net() subtracts the noise so the check sees what the op added. */
typedef struct {
    float *buf, *init;
    int64_t n;
} grad_buf;
static grad_buf gb_new(int64_t n) {
    grad_buf g = {k_alloc(n), k_alloc(n), n};
    for (int64_t i = 0; i < n; i++) g.init[i] = g.buf[i] = (float)(rng_uniform(&R) - 0.5);
    return g;
}
static float *gb_net(grad_buf *g) {
    for (int64_t i = 0; i < g->n; i++) g->buf[i] -= g->init[i];
    return g->buf;
}
static void gb_free(grad_buf *g) {
    k_free(g->buf);
    k_free(g->init);
}

/* err is evaluated once (it is often an fd_check call). */
#define REPORT_CHECK(name, err, tol)                                       \
    do {                                                                   \
        double e_ = (err);                                                 \
        test_report("%-40s max err %.2e (tol %.0e)", name, e_, (double)tol); \
        CHECK(e_ < (tol), "%s: %.3e", name, e_);                           \
    } while (0)

/* ---- linear --------------------------------------------------------------------------------------------- */

typedef struct {
    float *out, *inp, *w, *b, *r;
    int64_t M, K, N;
} lin_ctx;
static double lin_loss(void *p) {
    lin_ctx *c = p;
    linear_forward(c->out, c->inp, c->w, c->b, c->M, c->K, c->N);
    return dot(c->out, c->r, c->M * c->N);
}

static void test_linear(void) {
    lin_ctx c = {.M = 7, .K = 5, .N = 6};
    c.inp = randv(c.M * c.K, 1), c.w = randv(c.N * c.K, 1), c.b = randv(c.N, 1), c.r = randv(c.M * c.N, 1);
    c.out = k_alloc(c.M * c.N);
    grad_buf di = gb_new(c.M * c.K), dw = gb_new(c.N * c.K), db = gb_new(c.N);
    linear_backward(di.buf, dw.buf, db.buf, c.r, c.inp, c.w, c.M, c.K, c.N);
    REPORT_CHECK("linear dinp", fd_check(lin_loss, &c, c.inp, gb_net(&di), c.M * c.K), FD_TOL);
    REPORT_CHECK("linear dw", fd_check(lin_loss, &c, c.w, gb_net(&dw), c.N * c.K), FD_TOL);
    REPORT_CHECK("linear db", fd_check(lin_loss, &c, c.b, gb_net(&db), c.N), FD_TOL);
    /* no bias: out = inp w^T exactly */
    linear_forward(c.out, c.inp, c.w, NULL, c.M, c.K, c.N);
    double e = 0;
    for (int64_t m = 0; m < c.M; m++)
        for (int64_t n = 0; n < c.N; n++) e = fmax(e, fabs(c.out[m * c.N + n] - dot(c.inp + m * c.K, c.w + n * c.K, c.K)));
    REPORT_CHECK("linear forward (no bias) vs direct", e, 1e-5);
    gb_free(&di), gb_free(&dw), gb_free(&db);
    k_free(c.inp), k_free(c.w), k_free(c.b), k_free(c.r), k_free(c.out);
}

typedef struct {
    float *out, *base, *b, *r;
    int64_t M, ld, off, n;
} bias_ctx;
static double bias_loss(void *p) {
    bias_ctx *c = p;
    memcpy(c->out, c->base, (size_t)(c->M * c->ld) * sizeof(float));
    bias_add_forward(c->out, c->b, c->M, c->ld, c->off, c->n);
    return dot(c->out, c->r, c->M * c->ld);
}

static void test_bias_add(void) {
    bias_ctx c = {.M = 5, .ld = 12, .off = 8, .n = 4};
    c.base = randv(c.M * c.ld, 1), c.b = randv(c.n, 1), c.r = randv(c.M * c.ld, 1), c.out = k_alloc(c.M * c.ld);
    grad_buf db = gb_new(c.n);
    bias_add_backward(db.buf, c.r, c.M, c.ld, c.off, c.n);
    REPORT_CHECK("bias_add db", fd_check(bias_loss, &c, c.b, gb_net(&db), c.n), FD_TOL);
    gb_free(&db);
    k_free(c.base), k_free(c.b), k_free(c.r), k_free(c.out);
}

/* ---- layernorm, gelu ------------------------------------------------------------------------------------- */

typedef struct {
    float *out, *mean, *rstd, *inp, *w, *b, *r;
    int64_t M, C;
} ln_ctx;
static double ln_loss(void *p) {
    ln_ctx *c = p;
    layernorm_forward(c->out, c->mean, c->rstd, c->inp, c->w, c->b, c->M, c->C);
    return dot(c->out, c->r, c->M * c->C);
}

static void test_layernorm(void) {
    for (int affine = 1; affine >= 0; affine--) {
        ln_ctx c = {.M = 6, .C = 10};
        c.inp = randv(c.M * c.C, 2), c.r = randv(c.M * c.C, 1);
        c.w = affine ? randv(c.C, 1) : NULL, c.b = affine ? randv(c.C, 1) : NULL;
        c.out = k_alloc(c.M * c.C), c.mean = k_alloc(c.M), c.rstd = k_alloc(c.M);
        ln_loss(&c);
        grad_buf di = gb_new(c.M * c.C), dw = gb_new(c.C), db = gb_new(c.C);
        layernorm_backward(di.buf, affine ? dw.buf : NULL, affine ? db.buf : NULL, c.r, c.inp, c.w, c.mean, c.rstd,
                           c.M, c.C);
        REPORT_CHECK(affine ? "layernorm dinp" : "layernorm (no affine) dinp",
                     fd_check(ln_loss, &c, c.inp, gb_net(&di), c.M * c.C), FD_TOL);
        if (affine) {
            REPORT_CHECK("layernorm dw", fd_check(ln_loss, &c, c.w, gb_net(&dw), c.C), FD_TOL);
            REPORT_CHECK("layernorm db", fd_check(ln_loss, &c, c.b, gb_net(&db), c.C), FD_TOL);
        } else {
            /* non-affine output: zero mean, unit variance per row (eps 1e-6 is negligible at this scale) */
            double e = 0;
            for (int64_t m = 0; m < c.M; m++) {
                double s = 0, s2 = 0;
                for (int64_t j = 0; j < c.C; j++) s += c.out[m * c.C + j], s2 += c.out[m * c.C + j] * c.out[m * c.C + j];
                e = fmax(e, fmax(fabs(s / c.C), fabs(s2 / c.C - 1)));
            }
            REPORT_CHECK("layernorm (no affine) moments", e, 1e-5);
        }
        gb_free(&di), gb_free(&dw), gb_free(&db);
        k_free(c.inp), k_free(c.r), k_free(c.w), k_free(c.b), k_free(c.out), k_free(c.mean), k_free(c.rstd);
    }
}

typedef struct {
    float *out, *inp, *r;
    int64_t n;
} un_ctx;
static double gelu_loss(void *p) {
    un_ctx *c = p;
    gelu_forward(c->out, c->inp, c->n);
    return dot(c->out, c->r, c->n);
}

static void test_gelu(void) {
    un_ctx c = {.n = 64};
    c.inp = randv(c.n, 4), c.r = randv(c.n, 1), c.out = k_alloc(c.n);
    grad_buf di = gb_new(c.n);
    gelu_backward(di.buf, c.inp, c.r, c.n);
    REPORT_CHECK("gelu dinp", fd_check(gelu_loss, &c, c.inp, gb_net(&di), c.n), FD_TOL);
    gelu_forward(c.out, c.inp, c.n);
    double e = 0;
    for (int64_t i = 0; i < c.n; i++) {
        double x = c.inp[i];
        e = fmax(e, fabs(c.out[i] - 0.5 * x * (1 + erf(x / sqrt(2.0)))));
    }
    REPORT_CHECK("gelu forward vs erf form (abs)", e, 1e-6);
    gb_free(&di);
    k_free(c.inp), k_free(c.r), k_free(c.out);
}

/* ---- attention ------------------------------------------------------------------------------------------ */

typedef struct {
    float *out, *probs, *qkv, *r;
    int64_t B, N, D, H;
} att_ctx;
static double att_loss(void *p) {
    att_ctx *c = p;
    attention_forward(c->out, c->probs, c->qkv, c->B, c->N, c->D, c->H);
    return dot(c->out, c->r, c->B * c->N * c->D);
}

static void test_attention(void) {
    att_ctx c = {.B = 2, .N = 5, .D = 8, .H = 2};
    int64_t n = c.B * c.N * 3 * c.D;
    c.qkv = randv(n, 1.5), c.r = randv(c.B * c.N * c.D, 1);
    c.out = k_alloc(c.B * c.N * c.D), c.probs = k_alloc(c.B * c.H * c.N * c.N);
    float *scratch = k_alloc(c.N * c.N);
    att_loss(&c);
    grad_buf dq = gb_new(n);
    attention_backward(dq.buf, scratch, c.r, c.qkv, c.probs, c.B, c.N, c.D, c.H);
    REPORT_CHECK("attention dqkv", fd_check(att_loss, &c, c.qkv, gb_net(&dq), n), FD_TOL_ATTN);
    /* forward against a direct double computation (fd_check left a perturbed output behind) */
    att_loss(&c);
    double e = 0, hd = (double)c.D / c.H;
    for (int64_t b = 0; b < c.B; b++)
        for (int64_t h = 0; h < c.H; h++)
            for (int64_t i = 0; i < c.N; i++) {
                double s[16], mx = -1e300, z = 0;
                for (int64_t j = 0; j < c.N; j++) {
                    s[j] = 0;
                    for (int64_t d = 0; d < hd; d++)
                        s[j] += (double)c.qkv[(b * c.N + i) * 3 * c.D + h * (int64_t)hd + d] *
                                c.qkv[(b * c.N + j) * 3 * c.D + c.D + h * (int64_t)hd + d];
                    s[j] /= sqrt(hd);
                    mx = fmax(mx, s[j]);
                }
                for (int64_t j = 0; j < c.N; j++) z += exp(s[j] - mx);
                for (int64_t d = 0; d < hd; d++) {
                    double o = 0;
                    for (int64_t j = 0; j < c.N; j++)
                        o += exp(s[j] - mx) / z * c.qkv[(b * c.N + j) * 3 * c.D + 2 * c.D + h * (int64_t)hd + d];
                    e = fmax(e, fabs(o - c.out[(b * c.N + i) * c.D + h * (int64_t)hd + d]));
                }
            }
    REPORT_CHECK("attention forward vs direct (abs)", e, 1e-5);
    gb_free(&dq);
    k_free(c.qkv), k_free(c.r), k_free(c.out), k_free(c.probs), k_free(scratch);
}

/* ---- residual, rows, concat ----------------------------------------------------------------------------- */

typedef struct {
    float *out, *x, *br, *ks, *r;
    int64_t B, S;
} res_ctx;
static double res_loss(void *p) {
    res_ctx *c = p;
    residual_forward(c->out, c->x, c->br, c->ks, c->B, c->S);
    return dot(c->out, c->r, c->B * c->S);
}

static void test_residual(void) {
    res_ctx c = {.B = 3, .S = 7};
    c.x = randv(c.B * c.S, 1), c.br = randv(c.B * c.S, 1), c.r = randv(c.B * c.S, 1), c.out = k_alloc(c.B * c.S);
    c.ks = k_alloc(3);
    c.ks[0] = 0.0f, c.ks[1] = 1.25f, c.ks[2] = 1.0f; /* dropped, kept at rate 0.2, rate 0 */
    grad_buf dbr = gb_new(c.B * c.S);
    residual_backward(dbr.buf, c.r, c.ks, c.B, c.S);
    REPORT_CHECK("residual (drop path) dbranch", fd_check(res_loss, &c, c.br, gb_net(&dbr), c.B * c.S), FD_TOL);
    /* the gradient into x is dout itself */
    REPORT_CHECK("residual dx = dout", fd_check(res_loss, &c, c.x, c.r, c.B * c.S), FD_TOL);
    gb_free(&dbr);
    k_free(c.x), k_free(c.br), k_free(c.r), k_free(c.out), k_free(c.ks);
}

typedef struct {
    float *out, *inp, *r;
    int32_t *idx;
    int64_t M, C;
} rows_ctx;
static double gather_loss(void *p) {
    rows_ctx *c = p;
    gather_rows(c->out, c->inp, c->idx, c->M, c->C);
    return dot(c->out, c->r, c->M * c->C);
}

static void test_rows(void) {
    rows_ctx c = {.M = 4, .C = 3};
    int64_t rows = 7;
    c.inp = randv(rows * c.C, 1), c.r = randv(c.M * c.C, 1), c.out = k_alloc(c.M * c.C);
    c.idx = k_alloc_bytes(c.M * 4);
    int32_t idx[4] = {5, 0, 3, 6};
    k_upload(c.idx, idx, sizeof idx);
    grad_buf di = gb_new(rows * c.C);
    scatter_add_rows(di.buf, c.r, c.idx, c.M, c.C);
    REPORT_CHECK("gather_rows / scatter_add_rows", fd_check(gather_loss, &c, c.inp, gb_net(&di), rows * c.C), FD_TOL);
    /* add_pos: forward only (the tables are frozen) */
    float *x = randv(c.M * c.C, 1), *x0 = k_alloc(c.M * c.C);
    k_copy(x0, x, c.M * c.C);
    add_pos_forward(x, c.inp, c.idx, c.M, c.C);
    double e = 0;
    for (int64_t i = 0; i < c.M; i++)
        for (int64_t j = 0; j < c.C; j++) e = fmax(e, fabs(x[i * c.C + j] - (x0[i * c.C + j] + c.inp[idx[i] * c.C + j])));
    REPORT_CHECK("add_pos_forward vs direct (abs)", e, 1e-7);
    gb_free(&di);
    k_free(c.inp), k_free(c.r), k_free(c.out), k_free(c.idx), k_free(x), k_free(x0);
}

typedef struct {
    float *out, *x, *tok, *pos, *r;
    int32_t *pidx;
    int64_t B, Nx, Nt, C;
    int first;
} cat_ctx;
static double cat_loss(void *p) {
    cat_ctx *c = p;
    concat_tokens_forward(c->out, c->x, c->tok, c->pos, c->pidx, c->B, c->Nx, c->Nt, c->C, c->first);
    return dot(c->out, c->r, c->B * (c->Nx + c->Nt) * c->C);
}

static void test_concat_tokens(void) {
    for (int first = 0; first < 2; first++) {
        cat_ctx c = {.B = 2, .Nx = 3, .Nt = 2, .C = 4, .first = first};
        int64_t N = c.Nx + c.Nt;
        c.x = randv(c.B * c.Nx * c.C, 1), c.tok = randv(c.C, 1), c.pos = randv(N * c.C, 1);
        c.r = randv(c.B * N * c.C, 1), c.out = k_alloc(c.B * N * c.C);
        c.pidx = k_alloc_bytes(c.B * N * 4);
        int32_t pidx[10] = {4, 1, 2, 0, 3, 0, 2, 4, 1, 3};
        k_upload(c.pidx, pidx, sizeof pidx);
        grad_buf dx = gb_new(c.B * c.Nx * c.C), dt = gb_new(c.C);
        concat_tokens_backward(dx.buf, dt.buf, c.r, c.B, c.Nx, c.Nt, c.C, first);
        REPORT_CHECK(first ? "concat_tokens (tok first) dx" : "concat_tokens dx",
                     fd_check(cat_loss, &c, c.x, gb_net(&dx), c.B * c.Nx * c.C), FD_TOL);
        REPORT_CHECK(first ? "concat_tokens (tok first) dtok" : "concat_tokens dtok",
                     fd_check(cat_loss, &c, c.tok, gb_net(&dt), c.C), FD_TOL);
        /* forward layout: row 0 of sample 1 is x (tok last) or tok (tok first), plus its position row */
        cat_loss(&c);
        const float *want = first ? c.tok : c.x + c.Nx * c.C;
        double e = 0;
        for (int64_t j = 0; j < c.C; j++) e = fmax(e, fabs(c.out[N * c.C + j] - (want[j] + c.pos[pidx[N] * c.C + j])));
        REPORT_CHECK("concat_tokens layout (abs)", e, 1e-7);
        gb_free(&dx), gb_free(&dt);
        k_free(c.x), k_free(c.tok), k_free(c.pos), k_free(c.r), k_free(c.out), k_free(c.pidx);
    }
}

/* ---- im2col: the patch embedding equals a direct Conv3d / Conv2d ---------------------------------------- */

static void test_im2col(void) {
    int64_t B = 2, Cin = 3, T = 4, H = 6, W = 9, kt = 2, p = 3, D = 5;
    int64_t nt = T / kt, nh = H / p, nw = W / p, K = Cin * kt * p * p, rows = B * nt * nh * nw;
    float *inp = randv(B * Cin * T * H * W, 1), *w = randv(D * K, 1), *b = randv(D, 1);
    float *cols = k_alloc(rows * K), *out = k_alloc(rows * D);
    im2col_tubelet(cols, inp, B, Cin, T, H, W, kt, p);
    linear_forward(out, cols, w, b, rows, K, D);
    double e = 0;
    for (int64_t r = 0; r < rows; r++) {
        int64_t ww = r % nw, hh = (r / nw) % nh, tt = (r / (nw * nh)) % nt, bb = r / (nw * nh * nt);
        for (int64_t o = 0; o < D; o++) {
            double s = b[o];
            for (int64_t c = 0; c < Cin; c++)
                for (int64_t dt = 0; dt < kt; dt++)
                    for (int64_t dh = 0; dh < p; dh++)
                        for (int64_t dw = 0; dw < p; dw++)
                            s += (double)w[(((o * Cin + c) * kt + dt) * p + dh) * p + dw] *
                                 inp[(((bb * Cin + c) * T + tt * kt + dt) * H + hh * p + dh) * W + ww * p + dw];
            e = fmax(e, fabs(s - out[r * D + o]));
        }
    }
    REPORT_CHECK("im2col + linear vs direct Conv3d (abs)", e, 1e-5);
    k_free(inp), k_free(w), k_free(b), k_free(cols), k_free(out);
}

/* ---- loss and optimiser ---------------------------------------------------------------------------------- */

typedef struct {
    float *pred, *target;
    int64_t n;
} sl1_ctx;
static double sl1_loss(void *p) {
    sl1_ctx *c = p;
    return smooth_l1_forward(c->pred, c->target, c->n);
}

static void test_smooth_l1(void) {
    sl1_ctx c = {.n = 50};
    c.pred = randv(c.n, 3), c.target = randv(c.n, 1);
    /* keep every difference away from the kink at |d| = 1, where a central difference is not a derivative */
    for (int64_t i = 0; i < c.n; i++) {
        float d = c.pred[i] - c.target[i];
        if (fabsf(fabsf(d) - 1.0f) < 0.05f) c.pred[i] += 0.2f;
    }
    grad_buf g = gb_new(c.n);
    smooth_l1_backward(g.buf, c.pred, c.target, c.n, 1.0f);
    REPORT_CHECK("smooth_l1 dpred", fd_check(sl1_loss, &c, c.pred, gb_net(&g), c.n), FD_TOL);
    double s = 0;
    for (int64_t i = 0; i < c.n; i++) {
        double d = fabs((double)c.pred[i] - c.target[i]);
        s += d < 1 ? 0.5 * d * d : d - 0.5;
    }
    REPORT_CHECK("smooth_l1 forward vs direct (rel)", fabs(sl1_loss(&c) - s / c.n) / (s / c.n), 1e-12);
    gb_free(&g);
    k_free(c.pred), k_free(c.target);
}

static void test_adamw(void) {
    int64_t n = 40;
    float *p = randv(n, 1), *m = k_alloc(n), *v = k_alloc(n), *g = k_alloc(n);
    double pd[40], md[40] = {0}, vd[40] = {0};
    for (int64_t i = 0; i < n; i++) pd[i] = p[i];
    const double lr = 1e-2, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.05;
    for (int64_t t = 1; t <= 5; t++) {
        for (int64_t i = 0; i < n; i++) g[i] = (float)(rng_uniform(&R) - 0.5);
        adamw_update(p, g, m, v, n, (float)lr, (float)b1, (float)b2, (float)eps, (float)wd, t);
        for (int64_t i = 0; i < n; i++) {
            pd[i] *= 1 - lr * wd;
            md[i] = b1 * md[i] + (1 - b1) * g[i];
            vd[i] = b2 * vd[i] + (1 - b2) * (double)g[i] * g[i];
            double denom = sqrt(vd[i]) / sqrt(1 - pow(b2, (double)t)) + eps;
            pd[i] -= lr / (1 - pow(b1, (double)t)) * md[i] / denom;
        }
    }
    double e = 0;
    for (int64_t i = 0; i < n; i++) e = fmax(e, fabs(p[i] - pd[i]));
    REPORT_CHECK("adamw 5 steps vs double formula (abs)", e, 1e-6);
    double ss = 0;
    for (int64_t i = 0; i < n; i++) ss += (double)g[i] * g[i];
    REPORT_CHECK("sum_squares (rel)", fabs(sum_squares(g, n) - ss) / ss, 1e-12);
    float g0 = g[3];
    scale_inplace(g, 0.5f, n);
    REPORT_CHECK("scale_inplace (abs)", fabs(g[3] - 0.5f * g0), 1e-12);
    k_free(p), k_free(m), k_free(v), k_free(g);
}

int main(void) {
    rng_init(&R, rng_key(1234, 0, 0, 0));
    RUN(test_linear);
    RUN(test_bias_add);
    RUN(test_layernorm);
    RUN(test_gelu);
    RUN(test_attention);
    RUN(test_residual);
    RUN(test_rows);
    RUN(test_concat_tokens);
    RUN(test_im2col);
    RUN(test_smooth_l1);
    RUN(test_adamw);
    return test_summary();
}
