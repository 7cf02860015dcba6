/* bench_model.c: times the C models at a given size, for scripts/bench.sh, which runs the PyTorch peer on the
 * same sizes in the same run and reports the ratio.
 *
 *   bench_model student DIM DEPTH HEADS DEC_DIM DEC_DEPTH DEC_HEADS TEACHER_DIM BATCH FRAMES SIZE REPS
 *       one training step: forward + backward + AdamW update (drop path off, mask ratio 0.9)
 *   bench_model teacher image|video DIM DEPTH HEADS FRAMES SIZE REPS
 *       one teacher forward over a clip
 * Prints one line: {"what": ..., "seconds": median seconds per iteration, "gflop": ...}. Inputs are random:
 * the timing of these dense ops does not depend on the values. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mask.h"
#include "optim.h"
#include "rng.h"
#include "student.h"
#include "teacher.h"

static void fill_random(float *x, int64_t n, uint64_t seed) {
    rng_state r;
    rng_init(&r, seed);
    for (int64_t i = 0; i < n; i++) x[i] = (float)rng_normal(&r);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *t, int n) {
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    return t[n / 2];
}

static int bench_student(char **a) {
    student_config c;
    mvd_err err;
    if (student_config_preset(&c, "S", &err) != 0) return fprintf(stderr, "%s\n", err.msg), 1;
    c.dim = atoi(a[0]), c.depth = atoi(a[1]), c.heads = atoi(a[2]);
    c.dec_dim = atoi(a[3]), c.dec_depth = atoi(a[4]), c.dec_heads = atoi(a[5]);
    c.img_dim = c.vid_dim = atoi(a[6]);
    int64_t B = atoi(a[7]);
    c.num_frames = atoi(a[8]), c.input_size = atoi(a[9]);
    int reps = atoi(a[10]);
    c.max_batch = B, c.drop_path = 0;
    student *s = student_create(&c, 1, &err);
    if (!s) return fprintf(stderr, "%s\n", err.msg), 1;
    int64_t N = s->n_tokens, clip_n = 3 * c.num_frames * c.input_size * c.input_size;
    float *clips = malloc((size_t)(B * clip_n) * sizeof(float));
    float *ti = malloc((size_t)(B * N * c.img_dim) * sizeof(float)), *tv = malloc((size_t)(B * N * c.vid_dim) * sizeof(float));
    uint8_t *masks = malloc((size_t)(B * N));
    fill_random(clips, B * clip_n, 1), fill_random(ti, B * N * c.img_dim, 2), fill_random(tv, B * N * c.vid_dim, 3);
    for (int64_t b = 0; b < B; b++) mask_tube(masks + b * N, s->t, s->gh, s->gw, c.mask_ratio, mask_key(0, 0, (uint64_t)b));
    adamw_state o;
    adamw_init(&o, &s->tab, 0.9f, 0.95f, 1e-8f);
    student_batch batch = {.B = B, .clips = clips, .masks = masks, .target_img = ti, .target_vid = tv, .w_img = 1, .w_vid = 1};
    double *times = malloc((size_t)(reps + 1) * sizeof(double));
    for (int r = 0; r <= reps; r++) { /* iteration 0 warms caches and is not counted */
        double t0 = now_seconds();
        student_losses l;
        student_zero_grads(s);
        if (student_forward(s, &batch, &l, &err) != 0) return fprintf(stderr, "%s\n", err.msg), 1;
        student_backward(s);
        adamw_step(&o, s->params, s->grads, 1e-4f, 0.05f);
        times[r] = now_seconds() - t0;
    }
    printf("{\"what\": \"student step\", \"seconds\": %.6f}\n", median(times + 1, reps));
    free(times), free(clips), free(ti), free(tv), free(masks);
    adamw_free(&o);
    student_free(s);
    return 0;
}

static int bench_teacher(char **a) {
    teacher_config c;
    mvd_err err;
    teacher_kind kind = strcmp(a[0], "image") == 0 ? TEACHER_IMAGE : TEACHER_VIDEO;
    if (teacher_config_preset(&c, kind, "B", &err) != 0) return fprintf(stderr, "%s\n", err.msg), 1;
    c.dim = atoi(a[1]), c.depth = atoi(a[2]), c.heads = atoi(a[3]);
    c.num_frames = atoi(a[4]), c.input_size = atoi(a[5]);
    int reps = atoi(a[6]);
    const char *path = "build/bench/teacher.safetensors";
    if (teacher_write_random(&c, 1, path, "benchmark", &err) != 0) return fprintf(stderr, "%s\n", err.msg), 1;
    teacher *t = teacher_load(&c, path, &err);
    if (!t) return fprintf(stderr, "%s\n", err.msg), 1;
    int64_t n_in = teacher_input_numel(&c);
    float *in = malloc((size_t)n_in * sizeof(float)), *out = malloc((size_t)(t->n_tokens * c.dim) * sizeof(float));
    fill_random(in, n_in, 1);
    double *times = malloc((size_t)(reps + 1) * sizeof(double));
    for (int r = 0; r <= reps; r++) {
        double t0 = now_seconds();
        if (teacher_forward(t, in, 1, 0, out, &err) != 0) return fprintf(stderr, "%s\n", err.msg), 1;
        times[r] = now_seconds() - t0;
    }
    printf("{\"what\": \"%s teacher forward\", \"seconds\": %.6f}\n", a[0], median(times + 1, reps));
    free(times), free(in), free(out);
    teacher_free(t);
    return 0;
}

int main(int argc, char **argv) {
    mvd_log_quiet = 1;
    if (argc == 13 && strcmp(argv[1], "student") == 0) return bench_student(argv + 2);
    if (argc == 9 && strcmp(argv[1], "teacher") == 0) return bench_teacher(argv + 2);
    fprintf(stderr, "usage: see the comment at the top of tests/bench/bench_model.c\n");
    return 1;
}
