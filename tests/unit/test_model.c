/* test_model.c: the C teachers and student against the PyTorch reference fixtures (tests/reference/
 * FIXTURES.md, written to build/fixtures/<case>/ by tests/reference/make_fixtures.py): teachers (also converted
 * from reference-style .pth files), student predictions, losses, every gradient and 10 AdamW steps; plus checks
 * that need no fixture: weight-loading errors and the checkpoint round trip. The student checkpoint for
 * tests/py/test_student_interop.py is written here too.
 *
 * Error measure per tensor: max|c - ref| / max|ref|. The oracle runs in float64 on the same fp32 weights and
 * inputs, so the measure is the C fp32 error itself. Tolerances (fp32): forwards and losses 1e-5, every
 * gradient 1e-4, the training losses 1e-5, weights after the AdamW steps 10 x lr absolute per element.
 * A missing case folder is a failure: the fixtures are part of the test suite.
 *
 * MVD_FIXTURES overrides the fixture root (default build/fixtures). Timings are in tests/bench/. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kernels.h"
#include "mask.h"
#include "optim.h"
#include "safetensors.h"
#include "student.h"
#include "teacher.h"
#include "test.h"
#include "util.h"

#define TOL_FWD 1e-5
#define TOL_GRAD 1e-4
#define TOL_LOSS 1e-5

static const char *fixture_root(void) {
    const char *r = getenv("MVD_FIXTURES");
    return r && *r ? r : "build/fixtures";
}

static double rel_err(const float *c, const float *ref, int64_t n) {
    double e = 0, m = 0;
    for (int64_t i = 0; i < n; i++) {
        e = fmax(e, fabs((double)c[i] - ref[i]));
        m = fmax(m, fabs((double)ref[i]));
    }
    return m > 0 ? e / m : e;
}

/* ---- fixture reading ------------------------------------------------------------------------------------- */

typedef struct {
    st_file io;
    cJSON *cfg;
    char dir[512];
} fixture;

static int fixture_open_dir(fixture *f, const char *dir, mvd_err *err);

static int fixture_open(fixture *f, const char *name, mvd_err *err) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", fixture_root(), name);
    return fixture_open_dir(f, dir, err);
}

static int fixture_open_dir(fixture *f, const char *dir, mvd_err *err) {
    snprintf(f->dir, sizeof f->dir, "%s", dir);
    char path[600];
    snprintf(path, sizeof path, "%s/config.json", f->dir);
    FILE *fp = fopen(path, "rb");
    if (!fp) return mvd_fail(err, "%s: missing (run tests/reference/make_fixtures.py %s)", path, fixture_root());
    char *buf = xmalloc(1 << 16);
    size_t n = fread(buf, 1, (1 << 16) - 1, fp);
    buf[n] = 0;
    fclose(fp);
    f->cfg = cJSON_Parse(buf);
    free(buf);
    if (!f->cfg) return mvd_fail(err, "%s: not valid JSON", path);
    snprintf(path, sizeof path, "%s/io.safetensors", f->dir);
    if (st_open(&f->io, path, err) != 0) {
        cJSON_Delete(f->cfg);
        return -1;
    }
    return 0;
}

static void fixture_close(fixture *f) {
    st_close(&f->io);
    cJSON_Delete(f->cfg);
}

static double jnum(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v)) {
        fprintf(stderr, "config.json: missing number %s\n", key);
        return NAN;
    }
    return v->valuedouble;
}
static const cJSON *jobj(const cJSON *o, const char *key) { return cJSON_GetObjectItemCaseSensitive(o, key); }

/* A tensor of io.safetensors as fp32 (NULL with a failed CHECK when absent or of another size). */
static float *io_f32(fixture *f, const char *name, int64_t numel) {
    const st_tensor *t = st_find(&f->io, name);
    CHECK(t != NULL, "%s: io.safetensors has no %s", f->dir, name);
    if (!t) return NULL;
    CHECK(numel < 0 || t->numel == numel, "%s: %s has %lld elements, expected %lld", f->dir, name,
          (long long)t->numel, (long long)numel);
    if (numel >= 0 && t->numel != numel) return NULL;
    float *x = xmalloc((size_t)t->numel * sizeof(float));
    mvd_err err;
    if (st_read_f32(&f->io, t, x, &err) != 0) {
        CHECK(0, "%s", err.msg);
        free(x);
        return NULL;
    }
    return x;
}

static void config_from_fixture(const fixture *f, teacher_config *ti, teacher_config *tv, student_config *sc) {
    const cJSON *c = f->cfg, *s = jobj(c, "student"), *ji = jobj(c, "image_teacher"), *jv = jobj(c, "video_teacher");
    int64_t frames = (int64_t)jnum(c, "num_frames"), size = (int64_t)jnum(c, "input_size");
    int64_t patch = (int64_t)jnum(c, "patch"), tub = (int64_t)jnum(c, "tubelet"), B = (int64_t)jnum(c, "batch");
    *ti = (teacher_config){TEACHER_IMAGE, (int64_t)jnum(ji, "dim"), (int64_t)jnum(ji, "depth"),
                           (int64_t)jnum(ji, "heads"), jnum(ji, "mlp_ratio"), (int64_t)jnum(ji, "patch"),
                           (int64_t)jnum(ji, "input_size"), frames, tub, B};
    *tv = (teacher_config){TEACHER_VIDEO, (int64_t)jnum(jv, "dim"), (int64_t)jnum(jv, "depth"),
                           (int64_t)jnum(jv, "heads"), jnum(jv, "mlp_ratio"), (int64_t)jnum(jv, "patch"), size,
                           frames, (int64_t)jnum(jv, "tubelet"), B};
    *sc = (student_config){.num_frames = frames, .input_size = size, .patch = patch, .tubelet = tub,
                           .dim = (int64_t)jnum(s, "dim"), .depth = (int64_t)jnum(s, "depth"),
                           .heads = (int64_t)jnum(s, "heads"), .mlp_ratio = jnum(s, "mlp_ratio"),
                           .dec_dim = (int64_t)jnum(s, "decoder_dim"), .dec_depth = (int64_t)jnum(s, "decoder_depth"),
                           .dec_heads = (int64_t)jnum(s, "decoder_heads"), .img_dim = ti->dim, .vid_dim = tv->dim,
                           .drop_path = jnum(s, "drop_path"), .mask_ratio = jnum(c, "mask_ratio"), .max_batch = B};
}

/* ---- teachers -------------------------------------------------------------------------------------------- */

static void check_teacher(fixture *f, const teacher_config *tc, const char *file, const char *in_name,
                          const char *tgt_name) {
    char path[600], normed[64];
    snprintf(path, sizeof path, "%s/%s", f->dir, file);
    mvd_err err;
    teacher *t = teacher_load(tc, path, &err);
    CHECK(t != NULL, "%s", err.msg);
    if (!t) return;
    int64_t B = tc->max_batch, n_out = B * t->n_tokens * tc->dim;
    float *in = io_f32(f, in_name, B * teacher_input_numel(tc)), *ref = io_f32(f, tgt_name, n_out);
    snprintf(normed, sizeof normed, "%s_normed", tgt_name);
    float *ref_n = io_f32(f, normed, n_out), *out = xmalloc((size_t)n_out * sizeof(float));
    if (in && ref && ref_n) {
        CHECK(teacher_forward(t, in, B, 0, out, &err) == 0, "%s", err.msg);
        double e = rel_err(out, ref, n_out);
        test_report("%-16s %-22s max rel err %.2e (tol %.0e)", f->dir + strlen(fixture_root()) + 1, tgt_name, e, TOL_FWD);
        CHECK(e < TOL_FWD, "%s %s: %.3e", f->dir, tgt_name, e);
        CHECK(teacher_forward(t, in, B, 1, out, &err) == 0, "%s", err.msg);
        e = rel_err(out, ref_n, n_out);
        test_report("%-16s %-22s max rel err %.2e (tol %.0e)", f->dir + strlen(fixture_root()) + 1, normed, e, TOL_FWD);
        CHECK(e < TOL_FWD, "%s %s: %.3e", f->dir, normed, e);
    }
    free(in), free(ref), free(ref_n), free(out);
    teacher_free(t);
}

/* ---- student --------------------------------------------------------------------------------------------- */

typedef struct {
    float *clip, *t_img, *t_vid, *keep_f;
    uint8_t *mask, *keep;
    int64_t steps;
} student_io;

static int student_io_read(fixture *f, const student *s, int64_t B, student_io *io) {
    const student_config *c = &s->c;
    int64_t N = s->n_tokens, nb = s->n_blocks_total;
    memset(io, 0, sizeof *io);
    io->steps = (int64_t)jnum(jobj(f->cfg, "optim"), "steps");
    io->clip = io_f32(f, "clip", B * 3 * c->num_frames * c->input_size * c->input_size);
    io->t_img = io_f32(f, "target_img", B * N * c->img_dim);
    io->t_vid = io_f32(f, "target_vid", B * N * c->vid_dim);
    io->keep_f = io_f32(f, "drop_keep", io->steps * nb * 2 * B);
    const st_tensor *m = st_find(&f->io, "mask");
    CHECK(m && m->dtype == ST_U8 && m->numel == B * N, "%s: mask must be uint8 [B, N]", f->dir);
    if (!io->clip || !io->t_img || !io->t_vid || !io->keep_f || !m || m->numel != B * N) return -1;
    io->mask = xmalloc((size_t)(B * N));
    mvd_err err;
    if (st_read_raw(&f->io, m, io->mask, &err) != 0) return -1;
    io->keep = xmalloc((size_t)(io->steps * nb * 2 * B));
    for (int64_t i = 0; i < io->steps * nb * 2 * B; i++) io->keep[i] = io->keep_f[i] != 0.0f;
    return 0;
}

static void student_io_free(student_io *io) {
    free(io->clip), free(io->t_img), free(io->t_vid), free(io->keep_f), free(io->mask), free(io->keep);
}

static student_batch batch_of(const fixture *f, const student *s, const student_io *io, int64_t step, int64_t B) {
    const cJSON *w = jobj(f->cfg, "loss_weights");
    student_batch b = {B, io->clip, io->mask, io->t_img, io->t_vid, io->keep + step * s->n_blocks_total * 2 * B,
                       (float)cJSON_GetArrayItem(w, 0)->valuedouble, (float)cJSON_GetArrayItem(w, 1)->valuedouble};
    return b;
}

static float *param_host(const float *buf, const param_entry *e) {
    float *x = xmalloc((size_t)e->numel * sizeof(float));
    k_download(x, buf + e->offset, e->numel * (int64_t)sizeof(float));
    return x;
}

/* Forward (predictions, losses) and every gradient of step 0. */
static void check_student_step0(fixture *f, student *s, const student_io *io, int64_t B, const char *cn) {
    mvd_err err;
    student_batch b = batch_of(f, s, io, 0, B);
    student_losses L;
    REQUIRE(student_forward(s, &b, &L, &err) == 0, "%s", err.msg);
    int64_t nm = B * s->n_masked;
    float *pi = xmalloc((size_t)(nm * s->c.img_dim) * sizeof(float)), *pv = xmalloc((size_t)(nm * s->c.vid_dim) * sizeof(float));
    student_predictions(s, pi, pv);
    float *ri = io_f32(f, "pred_img", nm * s->c.img_dim), *rv = io_f32(f, "pred_vid", nm * s->c.vid_dim);
    float *rl = io_f32(f, "loss", 1), *rli = io_f32(f, "loss_img", 1), *rlv = io_f32(f, "loss_vid", 1);
    if (ri && rv && rl && rli && rlv) {
        double e[5] = {rel_err(pi, ri, nm * s->c.img_dim), rel_err(pv, rv, nm * s->c.vid_dim),
                       fabs(L.loss - rl[0]) / fabs(rl[0]), fabs(L.loss_img - rli[0]) / fabs(rli[0]),
                       fabs(L.loss_vid - rlv[0]) / fabs(rlv[0])};
        const char *names[5] = {"pred_img", "pred_vid", "loss", "loss_img", "loss_vid"};
        for (int i = 0; i < 5; i++) {
            test_report("%-16s %-22s max rel err %.2e (tol %.0e)", cn, names[i], e[i], TOL_FWD);
            CHECK(e[i] < TOL_FWD, "%s %s: %.3e", cn, names[i], e[i]);
        }
    }
    free(pi), free(pv), free(ri), free(rv), free(rl), free(rli), free(rlv);
    student_zero_grads(s);
    student_backward(s);
    double worst = 0;
    const char *worst_name = "";
    int64_t n_checked = 0;
    for (int64_t i = 0; i < s->tab.count; i++) {
        const param_entry *e = &s->tab.e[i];
        if (!e->trainable) continue;
        char name[PARAM_NAME_MAX + 8];
        snprintf(name, sizeof name, "grad.%s", e->name);
        float *ref = io_f32(f, name, e->numel), *g = param_host(s->grads, e);
        if (ref) {
            double err_g = rel_err(g, ref, e->numel);
            CHECK(err_g < TOL_GRAD, "%s %s: %.3e", cn, name, err_g);
            if (err_g > worst) worst = err_g, worst_name = e->name;
            n_checked++;
        }
        free(ref), free(g);
    }
    test_report("%-16s %-22s max rel err %.2e over %lld tensors (worst %s) (tol %.0e)", cn, "grad.*", worst,
                (long long)n_checked, worst_name, TOL_GRAD);
}

/* `steps` AdamW updates with the reference schedule: losses, learning rates and the final weights. */
static void check_student_training(fixture *f, student *s, const student_io *io, int64_t B, const char *cn) {
    const cJSON *o = jobj(f->cfg, "optim");
    double lr = jnum(o, "lr"), min_lr = jnum(o, "min_lr"), wd = jnum(o, "weight_decay");
    int64_t warm = (int64_t)jnum(o, "warmup_steps"), total = (int64_t)jnum(o, "total_steps");
    float *ref_loss = io_f32(f, "train_loss", io->steps), *ref_lr = io_f32(f, "train_lr", io->steps);
    if (!ref_loss || !ref_lr) return;
    adamw_state opt;
    adamw_init(&opt, &s->tab, (float)jnum(o, "beta1"), (float)jnum(o, "beta2"), (float)jnum(o, "eps"));
    double worst_loss = 0, worst_lr = 0;
    mvd_err err;
    for (int64_t st = 0; st < io->steps; st++) {
        double lr_s = cosine_schedule(lr, min_lr, warm, total, st);
        worst_lr = fmax(worst_lr, fabs(lr_s - ref_lr[st]) / fabs(lr));
        student_batch b = batch_of(f, s, io, st, B);
        student_losses L;
        REQUIRE(student_forward(s, &b, &L, &err) == 0, "%s", err.msg);
        worst_loss = fmax(worst_loss, fabs(L.loss - ref_loss[st]) / fabs(ref_loss[st]));
        student_zero_grads(s);
        student_backward(s);
        adamw_step(&opt, s->params, s->grads, (float)lr_s, (float)wd);
    }
    test_report("%-16s %-22s max rel err %.2e (tol %.0e)", cn, "train_lr", worst_lr, 1e-6);
    CHECK(worst_lr < 1e-6, "%s train_lr: %.3e", cn, worst_lr);
    test_report("%-16s %-22s max rel err %.2e (tol %.0e)", cn, "train_loss", worst_loss, TOL_LOSS);
    CHECK(worst_loss < TOL_LOSS, "%s train_loss: %.3e", cn, worst_loss);
    double worst_w = 0;
    for (int64_t i = 0; i < s->tab.count; i++) {
        const param_entry *e = &s->tab.e[i];
        if (!e->trainable) continue;
        char name[PARAM_NAME_MAX + 8];
        snprintf(name, sizeof name, "final.%s", e->name);
        float *ref = io_f32(f, name, e->numel), *p = param_host(s->params, e);
        for (int64_t j = 0; ref && j < e->numel; j++) worst_w = fmax(worst_w, fabs((double)p[j] - ref[j]));
        free(ref), free(p);
    }
    test_report("%-16s %-22s max abs err %.2e = %.1e lr (tol 10 lr)", cn, "final.*", worst_w, worst_w / lr);
    CHECK(worst_w < 10 * lr, "%s final weights: %.3e > 10 lr", cn, worst_w);
    adamw_free(&opt);
    free(ref_loss), free(ref_lr);
}

static void run_case(const char *name) {
    fixture f;
    mvd_err err;
    REQUIRE(fixture_open(&f, name, &err) == 0, "%s", err.msg);
    teacher_config ti, tv;
    student_config sc;
    config_from_fixture(&f, &ti, &tv, &sc);
    check_teacher(&f, &ti, "image_teacher.safetensors", "image_input", "target_img");
    check_teacher(&f, &tv, "video_teacher.safetensors", "clip", "target_vid");
    char path[600];
    snprintf(path, sizeof path, "%s/student.safetensors", f.dir);
    student *s = student_load(&sc, path, &err);
    CHECK(s != NULL, "%s", err.msg);
    student_io io;
    if (s && student_io_read(&f, s, sc.max_batch, &io) == 0) {
        check_student_step0(&f, s, &io, sc.max_batch, name);
        check_student_training(&f, s, &io, sc.max_batch, name);
    }
    if (s) student_io_free(&io);
    student_free(s);
    fixture_close(&f);
}


/* ---- fixed tables against the reference's ------------------------------------------------------------------ */

/* The C student's and image teacher's computed tables equal the ones the PyTorch reference stored. */
static void test_pos_tables_vs_reference(void) {
    fixture f;
    mvd_err err;
    REQUIRE(fixture_open(&f, "real", &err) == 0, "%s", err.msg);
    teacher_config ti, tv;
    student_config sc;
    config_from_fixture(&f, &ti, &tv, &sc);
    char path[600];
    snprintf(path, sizeof path, "%s/student.safetensors", f.dir);
    student *ref = student_load(&sc, path, &err), *mine = student_create(&sc, 1, &err);
    CHECK(ref && mine, "%s", err.msg);
    for (int i = 0; ref && mine && i < 3; i++) {
        const char *name = i == 0 ? "pos_embed" : i == 1 ? "pos_embed_img" : "pos_embed_vid";
        const param_entry *e = ptab_find(&mine->tab, name);
        float *a = param_host(mine->params, e), *b = param_host(ref->params, e);
        double d = rel_err(a, b, e->numel);
        test_report("%-16s %-22s max rel err %.2e (tol %.0e)", "real", name, d, 1e-6);
        CHECK(d < 1e-6, "%s: %.3e", name, d);
        free(a), free(b);
    }
    student_free(ref), student_free(mine);
    /* the image teacher file carries MAE's table (ignored on load): ours, recomputed, must equal it */
    snprintf(path, sizeof path, "%s/image_teacher.safetensors", f.dir);
    teacher *t = teacher_load(&ti, path, &err);
    st_file tf;
    CHECK(t != NULL, "%s", err.msg);
    if (t && st_open(&tf, path, &err) == 0) {
        const st_tensor *pe = st_find(&tf, "pos_embed");
        CHECK(pe && pe->numel == t->seq * ti.dim, "image teacher file: pos_embed missing or mis-sized");
        if (pe && pe->numel == t->seq * ti.dim) {
            float *a = xmalloc((size_t)pe->numel * sizeof(float)), *b = xmalloc((size_t)pe->numel * sizeof(float));
            k_download(a, t->pos, pe->numel * (int64_t)sizeof(float));
            CHECK(st_read_f32(&tf, pe, b, &err) == 0, "%s", err.msg);
            double d = rel_err(a, b, pe->numel);
            test_report("%-16s %-22s max rel err %.2e (tol %.0e)", "real", "image teacher pos", d, 1e-6);
            CHECK(d < 1e-6, "image teacher pos: %.3e", d);
            free(a), free(b);
        }
        st_close(&tf);
    }
    teacher_free(t);
    fixture_close(&f);
}

/* ---- weight loading errors ------------------------------------------------------------------------------------ */

static char tmp_dir[256];

static const char *tmp_path(const char *name) {
    static char buf[4][512];
    static int slot;
    slot = (slot + 1) % 4;
    snprintf(buf[slot], sizeof buf[slot], "%s/%s", tmp_dir, name);
    return buf[slot];
}

/* Rewrites src into dst: drops `drop`, adds `add` (shape [2]) and gives `reshape` the shape [numel] instead. */
static int rewrite(const char *src, const char *dst, const char *drop, const char *add, const char *reshape) {
    st_file f;
    mvd_err err;
    if (st_open(&f, src, &err) != 0) return -1;
    st_writer w;
    st_writer_init(&w);
    float **bufs = xcalloc((size_t)f.count, sizeof *bufs), extra[2] = {1, 2};
    for (int64_t i = 0; i < f.count; i++) {
        const st_tensor *t = &f.tensors[i];
        if (drop && !strcmp(t->name, drop)) continue;
        bufs[i] = xmalloc((size_t)t->numel * sizeof(float));
        if (st_read_f32(&f, t, bufs[i], &err) != 0) return -1;
        int64_t flat[1] = {t->numel};
        int re = reshape && !strcmp(t->name, reshape);
        st_writer_add(&w, t->name, ST_F32, re ? 1 : t->ndim, re ? flat : t->shape, bufs[i]);
    }
    if (add) st_writer_add(&w, add, ST_F32, 1, (int64_t[]){2}, extra);
    int rc = st_writer_save(&w, dst, &err);
    st_writer_free(&w);
    for (int64_t i = 0; i < f.count; i++) free(bufs[i]);
    free(bufs);
    st_close(&f);
    return rc;
}

static void expect_load_error(const teacher_config *c, const char *path, const char *what, const char *name) {
    mvd_err err = {{0}};
    teacher *t = teacher_load(c, path, &err);
    CHECK(t == NULL, "%s: a teacher with %s loaded", path, what);
    CHECK(strstr(err.msg, name) != NULL, "%s: the error does not name %s: '%s'", what, name, err.msg);
    CHECK(strstr(err.msg, what) != NULL, "the error does not say '%s': '%s'", what, err.msg);
    test_report("%-10s -> %s", what, err.msg);
    teacher_free(t);
}

static void test_teacher_load_errors(void) {
    for (int kind = 0; kind < 2; kind++) {
        teacher_config c = {kind == 0 ? TEACHER_IMAGE : TEACHER_VIDEO, 32, 2, 2, 4.0, 8, 32, 4, 2, 2};
        const char *good = tmp_path(kind == 0 ? "img.safetensors" : "vid.safetensors");
        mvd_err err;
        REQUIRE(teacher_write_random(&c, 5, good, "test_model", &err) == 0, "%s", err.msg);
        teacher *t = teacher_load(&c, good, &err);
        CHECK(t != NULL, "random teacher does not load: %s", err.msg);
        /* a random teacher runs and gives finite targets */
        if (t) {
            int64_t n_in = c.max_batch * teacher_input_numel(&c), n_out = c.max_batch * t->n_tokens * c.dim;
            float *in = xcalloc((size_t)n_in, sizeof(float)), *out = xmalloc((size_t)n_out * sizeof(float));
            for (int64_t i = 0; i < n_in; i++) in[i] = (float)sin((double)i);
            CHECK(teacher_forward(t, in, c.max_batch, 0, out, &err) == 0, "%s", err.msg);
            int finite = 1;
            for (int64_t i = 0; i < n_out; i++) finite &= isfinite(out[i]);
            CHECK(finite, "random teacher gave non-finite targets");
            free(in), free(out);
        }
        teacher_free(t);
        const char *pre = kind == 0 ? "" : "encoder.", *bad = tmp_path("bad.safetensors");
        char name[128];
        snprintf(name, sizeof name, "%sblocks.1.mlp.fc2.bias", pre);
        REQUIRE(rewrite(good, bad, name, NULL, NULL) == 0, "rewrite failed");
        expect_load_error(&c, bad, "missing", name);
        REQUIRE(rewrite(good, bad, NULL, "blocks.9.attn.extra", NULL) == 0, "rewrite failed");
        expect_load_error(&c, bad, "unexpected", "blocks.9.attn.extra");
        snprintf(name, sizeof name, "%sblocks.0.attn.qkv.weight", pre);
        REQUIRE(rewrite(good, bad, NULL, NULL, name) == 0, "rewrite failed");
        expect_load_error(&c, bad, "shape", name);
        /* keys ignored by design load fine: MAE's pos_embed (already in the file), VideoMAE's decoder */
        REQUIRE(rewrite(good, bad, NULL, kind == 0 ? "pos_embed_unused_but_wrong" : "decoder.blocks.0.norm1.weight",
                        NULL) == 0, "rewrite failed");
        t = teacher_load(&c, bad, &err);
        CHECK(kind == 0 ? t == NULL : t != NULL, "ignored-key handling wrong for kind %d: %s", kind, t ? "" : err.msg);
        teacher_free(t);
        if (kind == 1) {
            REQUIRE(rewrite(good, bad, NULL, "mask_token", NULL) == 0, "rewrite failed");
            t = teacher_load(&c, bad, &err);
            CHECK(t != NULL, "VideoMAE mask_token must be ignored: %s", err.msg);
            teacher_free(t);
        }
    }
}

/* ---- student checkpoints ---------------------------------------------------------------------------------------- */

static void test_student_roundtrip(void) {
    student_config c;
    mvd_err err;
    REQUIRE(student_config_preset(&c, "S", &err) == 0, "%s", err.msg);
    c.num_frames = 4, c.input_size = 32, c.patch = 8, c.dim = 32, c.depth = 2, c.heads = 2, c.dec_dim = 16;
    c.dec_heads = 2, c.img_dim = 24, c.vid_dim = 20, c.mask_ratio = 0.75;
    student *a = student_create(&c, 11, &err);
    REQUIRE(a != NULL, "%s", err.msg);
    const char *path = tmp_path("student.safetensors"), *meta[] = {"kind", "mvd-student", NULL};
    REQUIRE(student_save(a, path, meta, &err) == 0, "%s", err.msg);
    student *b = student_load(&c, path, &err);
    REQUIRE(b != NULL, "%s", err.msg);
    float *pa = xmalloc((size_t)a->tab.total * sizeof(float)), *pb = xmalloc((size_t)a->tab.total * sizeof(float));
    k_download(pa, a->params, a->tab.total * (int64_t)sizeof(float));
    k_download(pb, b->params, a->tab.total * (int64_t)sizeof(float));
    CHECK(!memcmp(pa, pb, (size_t)a->tab.total * sizeof(float)), "save/load changed the parameters");
    /* the same seed gives the same student; mask tokens inside +-0.02 */
    student *c2 = student_create(&c, 11, &err);
    k_download(pb, c2->params, a->tab.total * (int64_t)sizeof(float));
    CHECK(!memcmp(pa, pb, (size_t)a->tab.total * sizeof(float)), "student_create is not a function of the seed");
    const param_entry *mt = ptab_find(&a->tab, "mask_token_img");
    for (int64_t i = 0; i < mt->numel; i++) CHECK(fabsf(pa[mt->offset + i]) <= 0.02f, "mask token outside +-0.02");
    CHECK(mt->decay == 1, "mask_token_img must decay (the reference's skip list names only mask_token)");
    CHECK(ptab_find(&a->tab, "pos_embed")->trainable == 0, "pos_embed must be frozen");
    CHECK(ptab_find(&a->tab, "blocks.0.attn.q_bias")->decay == 0, "1-D tensors must not decay");
    REQUIRE(rewrite(path, tmp_path("bad.safetensors"), "decoder_vid.head.bias", NULL, NULL) == 0, "rewrite failed");
    student *d = student_load(&c, tmp_path("bad.safetensors"), &err);
    CHECK(d == NULL && strstr(err.msg, "decoder_vid.head.bias"), "missing tensor not named: %s", err.msg);
    student_free(a), student_free(b), student_free(c2), student_free(d);
    free(pa), free(pb);
}

/* The teachers converted from reference-style .pth checkpoints by scripts/convert_checkpoint.py reproduce the
 * targets PyTorch computed with the original modules (make_fixtures.py --converted). */
static void test_converted_teachers(void) {
    fixture f;
    mvd_err err;
    char dir[512];
    snprintf(dir, sizeof dir, "%s_converted", fixture_root());
    REQUIRE(fixture_open_dir(&f, dir, &err) == 0, "%s", err.msg);
    teacher_config ti, tv;
    student_config sc;
    config_from_fixture(&f, &ti, &tv, &sc);
    check_teacher(&f, &ti, "image_teacher.safetensors", "image_input", "target_img");
    check_teacher(&f, &tv, "video_teacher.safetensors", "clip", "target_vid");
    fixture_close(&f);
}

/* A student as mvd-train writes it (C initialisation, student_save), with its predictions on the small case's
 * clip and mask, for tests/py/test_student_interop.py to load into the PyTorch reference with strict=True. */
static void test_student_checkpoint_for_pytorch(void) {
    fixture f;
    mvd_err err;
    REQUIRE(fixture_open(&f, "small", &err) == 0, "%s", err.msg);
    teacher_config ti, tv;
    student_config sc;
    config_from_fixture(&f, &ti, &tv, &sc);
    REQUIRE(mkdir_p("build/test-out/interop", &err) == 0, "%s", err.msg);
    student *s = student_create(&sc, 1234, &err);
    REQUIRE(s != NULL, "%s", err.msg);
    const char *meta[] = {"format", "mvd-student", NULL};
    CHECK(student_save(s, "build/test-out/interop/student.safetensors", meta, &err) == 0, "%s", err.msg);
    student_io io;
    if (student_io_read(&f, s, sc.max_batch, &io) == 0) {
        student_batch b = batch_of(&f, s, &io, 0, sc.max_batch);
        b.drop_keep = NULL; /* evaluation: no drop path */
        student_losses l;
        CHECK(student_forward(s, &b, &l, &err) == 0, "%s", err.msg);
        int64_t B = sc.max_batch, Nm = s->n_masked, N = s->n_tokens;
        float *pi = xmalloc((size_t)(B * Nm * sc.img_dim) * sizeof(float));
        float *pv = xmalloc((size_t)(B * Nm * sc.vid_dim) * sizeof(float));
        student_predictions(s, pi, pv);
        float loss[3] = {(float)l.loss, (float)l.loss_img, (float)l.loss_vid};
        int64_t clip_shape[5] = {B, 3, sc.num_frames, sc.input_size, sc.input_size}, mask_shape[2] = {B, N};
        int64_t pi_shape[3] = {B, Nm, sc.img_dim}, pv_shape[3] = {B, Nm, sc.vid_dim}, loss_shape[1] = {3};
        int64_t ti_shape[3] = {B, N, sc.img_dim}, tv_shape[3] = {B, N, sc.vid_dim};
        st_writer w;
        st_writer_init(&w);
        st_writer_add(&w, "clip", ST_F32, 5, clip_shape, io.clip);
        st_writer_add(&w, "mask", ST_U8, 2, mask_shape, io.mask);
        st_writer_add(&w, "target_img", ST_F32, 3, ti_shape, io.t_img);
        st_writer_add(&w, "target_vid", ST_F32, 3, tv_shape, io.t_vid);
        st_writer_add(&w, "pred_img", ST_F32, 3, pi_shape, pi);
        st_writer_add(&w, "pred_vid", ST_F32, 3, pv_shape, pv);
        st_writer_add(&w, "loss", ST_F32, 1, loss_shape, loss);
        CHECK(st_writer_save(&w, "build/test-out/interop/io.safetensors", &err) == 0, "%s", err.msg);
        st_writer_free(&w);
        free(pi), free(pv);
        student_io_free(&io);
    }
    student_free(s);
    fixture_close(&f);
}

static void test_fixture_small(void) { run_case("small"); }
static void test_fixture_small_droppath(void) { run_case("small_droppath"); }
static void test_fixture_real(void) { run_case("real"); }
static void test_fixture_real_droppath(void) { run_case("real_droppath"); }

int main(void) {
    mvd_log_quiet = 1;
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/mvd_test_model.XXXXXX");
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_teacher_load_errors);
    RUN(test_student_roundtrip);
    RUN(test_pos_tables_vs_reference);
    RUN(test_fixture_small);
    RUN(test_fixture_small_droppath);
    RUN(test_fixture_real);
    RUN(test_fixture_real_droppath);
    RUN(test_converted_teachers);
    RUN(test_student_checkpoint_for_pytorch);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp_dir);
    return test_summary();
}
