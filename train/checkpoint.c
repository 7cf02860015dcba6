/* checkpoint.c: see checkpoint.h. */
#include "checkpoint.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "safetensors.h"

#define STATE_FORMAT "mvd-train-state"

static void position_meta(const train_position *p, char buf[6][64]) {
    snprintf(buf[0], 64, "%" PRId64, p->step);
    snprintf(buf[1], 64, "%" PRIu64, p->seed);
    snprintf(buf[2], 64, "%" PRId64, p->batch);
    snprintf(buf[3], 64, "%" PRId64, p->accum);
    snprintf(buf[4], 64, "%" PRId64, p->total_steps);
    snprintf(buf[5], 64, "%" PRId64, p->warmup_steps);
}

static const char *const position_keys[6] = {"step", "seed", "batch", "accum", "total_steps", "warmup_steps"};

static int save_state(const char *path, const student *s, const adamw_state *o, const train_position *pos,
                      mvd_err *err) {
    const param_table *t = &s->tab;
    float *m = xmalloc((size_t)t->total * sizeof(float)), *v = xmalloc((size_t)t->total * sizeof(float));
    k_download(m, o->m, t->total * (int64_t)sizeof(float));
    k_download(v, o->v, t->total * (int64_t)sizeof(float));
    st_writer w;
    st_writer_init(&w);
    char name[PARAM_NAME_MAX + 16];
    for (int64_t i = 0; i < t->count; i++) {
        const param_entry *e = &t->e[i];
        if (!e->trainable) continue;
        snprintf(name, sizeof name, "exp_avg.%s", e->name);
        st_writer_add(&w, name, ST_F32, e->ndim, e->shape, m + e->offset);
        snprintf(name, sizeof name, "exp_avg_sq.%s", e->name);
        st_writer_add(&w, name, ST_F32, e->ndim, e->shape, v + e->offset);
    }
    char values[6][64];
    position_meta(pos, values);
    st_writer_meta(&w, "format", STATE_FORMAT);
    for (int i = 0; i < 6; i++) st_writer_meta(&w, position_keys[i], values[i]);
    st_writer_meta(&w, "settings", pos->settings);
    int rc = st_writer_save(&w, path, err);
    st_writer_free(&w);
    free(m), free(v);
    return rc;
}

int checkpoint_save(const char *dir, const student *s, const adamw_state *o, const train_position *pos,
                    mvd_err *err) {
    char *state = path_join(dir, CHECKPOINT_STATE_FILE), *model = path_join(dir, CHECKPOINT_STUDENT_FILE);
    char step[64];
    snprintf(step, sizeof step, "%" PRId64, pos->step);
    const char *meta[] = {"format", "mvd-student", "step", step, "tool", "mvd-train " MVD_VERSION, NULL};
    int rc = save_state(state, s, o, pos, err);
    if (rc == 0) rc = student_save(s, model, meta, err);
    free(state), free(model);
    return rc;
}

static int parse_i64(const st_file *f, const char *key, int64_t *out, mvd_err *err) {
    const char *v = st_meta(f, key);
    char *end;
    if (!v) return mvd_fail(err, "%s: metadata '%s' is missing", f->path, key);
    *out = strtoll(v, &end, 10);
    if (*end || end == v) return mvd_fail(err, "%s: metadata '%s' = '%s' is not an integer", f->path, key, v);
    return 0;
}

static int read_positions(const st_file *f, train_position *pos, mvd_err *err) {
    int64_t values[6];
    for (int i = 0; i < 6; i++)
        if (parse_i64(f, position_keys[i], &values[i], err) != 0) return -1;
    pos->step = values[0], pos->seed = (uint64_t)values[1], pos->batch = values[2], pos->accum = values[3];
    pos->total_steps = values[4], pos->warmup_steps = values[5];
    const char *settings = st_meta(f, "settings");
    snprintf(pos->settings, sizeof pos->settings, "%s", settings ? settings : "");
    return 0;
}

/* Reads one moment tensor, checking its shape against the parameter it belongs to. */
static int read_moment(st_file *f, const param_entry *e, const char *prefix, float *host, mvd_err *err) {
    char name[PARAM_NAME_MAX + 16];
    snprintf(name, sizeof name, "%s.%s", prefix, e->name);
    const st_tensor *t = st_find(f, name);
    if (!t) return mvd_fail(err, "%s: tensor '%s' is missing", f->path, name);
    int same = t->dtype == ST_F32 && t->ndim == e->ndim;
    for (int d = 0; same && d < e->ndim; d++) same = t->shape[d] == e->shape[d];
    if (!same) return mvd_fail(err, "%s: tensor '%s' has the wrong shape or dtype", f->path, name);
    return st_read_f32(f, t, host + e->offset, err);
}

int checkpoint_load_state(const char *dir, const student *s, adamw_state *o, train_position *pos, mvd_err *err) {
    char *path = path_join(dir, CHECKPOINT_STATE_FILE), *model = path_join(dir, CHECKPOINT_STUDENT_FILE);
    st_file f;
    int rc = st_open(&f, path, err);
    free(path);
    if (rc != 0) {
        free(model);
        return -1;
    }
    const char *format = st_meta(&f, "format");
    if (!format || strcmp(format, STATE_FORMAT) != 0) rc = mvd_fail(err, "%s: not a training state file", f.path);
    if (rc == 0) rc = read_positions(&f, pos, err);
    const param_table *t = &s->tab;
    float *m = xcalloc((size_t)t->total, sizeof(float)), *v = xcalloc((size_t)t->total, sizeof(float));
    for (int64_t i = 0; rc == 0 && i < t->count; i++) {
        if (!t->e[i].trainable) continue;
        rc = read_moment(&f, &t->e[i], "exp_avg", m, err);
        if (rc == 0) rc = read_moment(&f, &t->e[i], "exp_avg_sq", v, err);
    }
    if (rc == 0) {
        k_upload(o->m, m, t->total * (int64_t)sizeof(float));
        k_upload(o->v, v, t->total * (int64_t)sizeof(float));
        o->step = pos->step;
    }
    free(m), free(v);
    st_close(&f);
    if (rc == 0) {
        int64_t student_step = checkpoint_student_step(model, err);
        if (student_step != pos->step)
            rc = mvd_fail(err, "%s: student is at step %lld but the state file at step %lld (torn checkpoint)", model,
                          (long long)student_step, (long long)pos->step);
    }
    free(model);
    return rc;
}

int64_t checkpoint_student_step(const char *path, mvd_err *err) {
    st_file f;
    if (st_open(&f, path, err) != 0) return -1;
    int64_t step = -1;
    if (parse_i64(&f, "step", &step, err) != 0) step = -1;
    st_close(&f);
    return step;
}
