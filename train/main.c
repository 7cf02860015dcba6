/* mvd-train: pretrains an MVD student from a target cache made by mvd-extract.
 *
 * Each step: for each accumulation micro-batch, the loader decodes the cached clips' exact frames and crops,
 * checks their pixels, reads their cached targets and draws their tube masks; the student and its two decoders
 * run forward and backward (smooth-L1 on the masked tokens against each teacher); then one AdamW update with
 * the reference's parameter groups and per-step schedule. Only the student runs: the teachers' cost was paid
 * once, at extraction.
 *
 * Everything random is a pure function of (seed, epoch or step, clip), so a run continued from a checkpoint
 * (--resume) follows the same path as one that never stopped: on the CPU with the same thread count, N steps +
 * resume + N steps equals 2N steps bit for bit. Exit status: 0 done, 1 error (including a non-finite loss; the
 * last good checkpoint is kept), 3 stopped early on request (SIGINT/SIGTERM or --stop-at) with a checkpoint. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "cli.h"
#include "kernels.h"
#include "loader.h"
#include "optim.h"
#include "rng.h"
#include "student.h"
#include "video.h"

#define DROP_PATH_RNG_TAG 0x64726f70ULL /* "drop" */
#define EXIT_STOPPED 3

typedef struct {
    const char *cache_dir, *data_root, *out_dir, *init_path;
    int resume;
    const char *size;
    int64_t dim, depth, heads, dec_dim, dec_depth, dec_heads; /* 0: the preset's */
    double mlp_ratio, drop_path, mask_ratio;
    int64_t batch, accum, epochs, steps, warmup_epochs, warmup_steps, stop_at;
    double base_lr, base_min_lr, weight_decay, clip_grad, w_img, w_vid;
    uint64_t seed;
    int log_every, save_every, threads;
    pixel_check_mode pixel_check;
} train_options;

typedef struct {
    train_options opt;
    loader *data;
    student *model;
    student_config cfg;
    adamw_state optim;
    train_position pos;
    int64_t steps_per_epoch;
    double lr, min_lr; /* effective: base x total batch / 256 */
    double lr_now;     /* this step's scheduled value */
    uint8_t *drop_keep;
    FILE *metrics;
    double loss_sum[2]; /* sums of the first and last 10 step losses, for the closing summary */
    int64_t loss_count[2];
} train_run;

static volatile sig_atomic_t stop_requested = 0;
static void on_signal(int sig) { stop_requested = sig; }

static const char *usage_text =
    "Usage: mvd-train --cache DIR --data-root DIR --out RUN_DIR [options]\n"
    "Pretrains an MVD student on the clips of a target cache made by mvd-extract.\n"
    "\n"
    "Data:\n"
    "  --cache DIR             target cache (its manifest.json)\n"
    "  --data-root DIR         folder the cached video paths are relative to\n"
    "  --pixel-check error|warn|off  compare each decoded clip with its cached SHA-256 (error)\n"
    "  --out DIR               run folder: checkpoints, metrics.jsonl\n"
    "Model (a preset, then overrides):\n"
    "  --model S|B|L|H         student size (S)\n"
    "  --dim/--depth/--heads N, --decoder-dim/--decoder-depth/--decoder-heads N, --mlp-ratio X\n"
    "  --drop-path X           stochastic depth rate (0.1)\n"
    "  --mask-ratio X          tube mask ratio (0.9)\n"
    "  --init FILE             start from a student checkpoint (safetensors, MVD student keys)\n"
    "Optimisation:\n"
    "  --batch N               clips per micro-batch (8)\n"
    "  --accum N               micro-batches per update (1)\n"
    "  --epochs N | --steps N  length of the run (epochs: 1)\n"
    "  --warmup-epochs N | --warmup-steps N  linear warmup (40 epochs, capped at the run)\n"
    "  --base-lr X             1.5e-4, multiplied by batch x accum / 256\n"
    "  --base-min-lr X         1e-5, multiplied the same way\n"
    "  --weight-decay X        0.05\n"
    "  --clip-grad X           clip the global gradient norm (off)\n"
    "  --w-img X, --w-vid X    loss weights (1, 1)\n"
    "  --seed N                data order, masks, drop path and initialisation (0)\n"
    "Run control:\n"
    "  --log-every N           print every N steps (1); metrics.jsonl records every step\n"
    "  --save-every N          checkpoint every N steps (0: only at the end)\n"
    "  --resume                continue the run saved in --out\n"
    "  --stop-at STEP          stop after this step with a checkpoint, as an interruption would\n"
    "  --threads N             CPU threads (all cores)\n"
    "  --help, --version\n"
    "Exit status: 0 done, 1 error, 3 stopped early (signal or --stop-at) after writing a checkpoint.\n";

enum {
    OPT_CACHE = 256, OPT_ROOT, OPT_CHECK, OPT_OUT, OPT_MODEL, OPT_DIM, OPT_DEPTH, OPT_HEADS, OPT_DDIM, OPT_DDEPTH,
    OPT_DHEADS, OPT_MLP, OPT_DROP, OPT_MASK, OPT_INIT, OPT_BATCH, OPT_ACCUM, OPT_EPOCHS, OPT_STEPS, OPT_WEPOCHS,
    OPT_WSTEPS, OPT_LR, OPT_MINLR, OPT_WD, OPT_CLIP, OPT_WIMG, OPT_WVID, OPT_SEED, OPT_LOG, OPT_SAVE, OPT_RESUME,
    OPT_STOP, OPT_THREADS, OPT_HELP, OPT_VERSION
};

static const struct option long_options[] = {
    {"cache", 1, 0, OPT_CACHE}, {"data-root", 1, 0, OPT_ROOT}, {"pixel-check", 1, 0, OPT_CHECK},
    {"out", 1, 0, OPT_OUT}, {"model", 1, 0, OPT_MODEL}, {"dim", 1, 0, OPT_DIM}, {"depth", 1, 0, OPT_DEPTH},
    {"heads", 1, 0, OPT_HEADS}, {"decoder-dim", 1, 0, OPT_DDIM}, {"decoder-depth", 1, 0, OPT_DDEPTH},
    {"decoder-heads", 1, 0, OPT_DHEADS}, {"mlp-ratio", 1, 0, OPT_MLP}, {"drop-path", 1, 0, OPT_DROP},
    {"mask-ratio", 1, 0, OPT_MASK}, {"init", 1, 0, OPT_INIT}, {"batch", 1, 0, OPT_BATCH},
    {"accum", 1, 0, OPT_ACCUM}, {"epochs", 1, 0, OPT_EPOCHS}, {"steps", 1, 0, OPT_STEPS},
    {"warmup-epochs", 1, 0, OPT_WEPOCHS}, {"warmup-steps", 1, 0, OPT_WSTEPS}, {"base-lr", 1, 0, OPT_LR},
    {"base-min-lr", 1, 0, OPT_MINLR}, {"weight-decay", 1, 0, OPT_WD}, {"clip-grad", 1, 0, OPT_CLIP},
    {"w-img", 1, 0, OPT_WIMG}, {"w-vid", 1, 0, OPT_WVID}, {"seed", 1, 0, OPT_SEED}, {"log-every", 1, 0, OPT_LOG},
    {"save-every", 1, 0, OPT_SAVE}, {"resume", 0, 0, OPT_RESUME}, {"stop-at", 1, 0, OPT_STOP},
    {"threads", 1, 0, OPT_THREADS}, {"help", 0, 0, OPT_HELP}, {"version", 0, 0, OPT_VERSION}, {0, 0, 0, 0}};

static void parse_options(int argc, char **argv, train_options *o) {
    static const char *const checks[] = {"error", "warn", "off", NULL};
    memset(o, 0, sizeof *o);
    o->size = "S", o->mlp_ratio = 4, o->drop_path = 0.1, o->mask_ratio = 0.9;
    o->batch = 8, o->accum = 1, o->warmup_epochs = 40, o->warmup_steps = -1;
    o->base_lr = 1.5e-4, o->base_min_lr = 1e-5, o->weight_decay = 0.05, o->w_img = 1, o->w_vid = 1;
    o->log_every = 1;
    int opt;
    while ((opt = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
        switch (opt) {
        case OPT_CACHE: o->cache_dir = optarg; break;
        case OPT_ROOT: o->data_root = optarg; break;
        case OPT_CHECK: o->pixel_check = (pixel_check_mode)cli_choice("pixel-check", optarg, checks); break;
        case OPT_OUT: o->out_dir = optarg; break;
        case OPT_MODEL: o->size = optarg; break;
        case OPT_DIM: o->dim = cli_int("dim", optarg, 16, 8192); break;
        case OPT_DEPTH: o->depth = cli_int("depth", optarg, 1, 256); break;
        case OPT_HEADS: o->heads = cli_int("heads", optarg, 1, 256); break;
        case OPT_DDIM: o->dec_dim = cli_int("decoder-dim", optarg, 16, 8192); break;
        case OPT_DDEPTH: o->dec_depth = cli_int("decoder-depth", optarg, 1, 256); break;
        case OPT_DHEADS: o->dec_heads = cli_int("decoder-heads", optarg, 1, 256); break;
        case OPT_MLP: o->mlp_ratio = cli_double("mlp-ratio", optarg, 0.25, 64); break;
        case OPT_DROP: o->drop_path = cli_double("drop-path", optarg, 0, 0.99); break;
        case OPT_MASK: o->mask_ratio = cli_double("mask-ratio", optarg, 0.01, 0.99); break;
        case OPT_INIT: o->init_path = optarg; break;
        case OPT_BATCH: o->batch = cli_int("batch", optarg, 1, 1 << 16); break;
        case OPT_ACCUM: o->accum = cli_int("accum", optarg, 1, 1 << 16); break;
        case OPT_EPOCHS: o->epochs = cli_int("epochs", optarg, 1, 1 << 24); break;
        case OPT_STEPS: o->steps = cli_int("steps", optarg, 1, 1 << 30); break;
        case OPT_WEPOCHS: o->warmup_epochs = cli_int("warmup-epochs", optarg, 0, 1 << 24); break;
        case OPT_WSTEPS: o->warmup_steps = cli_int("warmup-steps", optarg, 0, 1 << 30); break;
        case OPT_LR: o->base_lr = cli_double("base-lr", optarg, 0, 10); break;
        case OPT_MINLR: o->base_min_lr = cli_double("base-min-lr", optarg, 0, 10); break;
        case OPT_WD: o->weight_decay = cli_double("weight-decay", optarg, 0, 10); break;
        case OPT_CLIP: o->clip_grad = cli_double("clip-grad", optarg, 0, 1e9); break;
        case OPT_WIMG: o->w_img = cli_double("w-img", optarg, 0, 1e6); break;
        case OPT_WVID: o->w_vid = cli_double("w-vid", optarg, 0, 1e6); break;
        case OPT_SEED: o->seed = cli_u64("seed", optarg); break;
        case OPT_LOG: o->log_every = cli_int("log-every", optarg, 1, 1 << 30); break;
        case OPT_SAVE: o->save_every = cli_int("save-every", optarg, 0, 1 << 30); break;
        case OPT_RESUME: o->resume = 1; break;
        case OPT_STOP: o->stop_at = cli_int("stop-at", optarg, 1, 1 << 30); break;
        case OPT_THREADS: o->threads = cli_int("threads", optarg, 1, 1024); break;
        case OPT_HELP: fputs(usage_text, stdout); exit(0);
        case OPT_VERSION: printf("mvd-train %s\n", MVD_VERSION); exit(0);
        default: cli_usage_error("unknown or incomplete option");
        }
    }
    if (optind < argc) cli_usage_error("unexpected argument '%s'", argv[optind]);
    if (!o->cache_dir || !o->out_dir) cli_usage_error("--cache and --out are required");
    if (!o->data_root) cli_usage_error("--data-root is required (the folder the cached video paths are relative to)");
    if (o->epochs && o->steps) cli_usage_error("give --epochs or --steps, not both");
    if (o->resume && o->init_path) cli_usage_error("--resume continues a run; --init starts a new one: not both");
    if (!o->epochs && !o->steps) o->epochs = 1;
}

/* The student's shape: a preset, the overrides, and the cache's geometry and teacher dims. */
static int configure_student(train_run *run, mvd_err *err) {
    const train_options *o = &run->opt;
    const cache_meta *m = loader_meta(run->data);
    student_config *c = &run->cfg;
    if (student_config_preset(c, o->size, err) != 0) return -1;
    if (o->dim) c->dim = o->dim;
    if (o->depth) c->depth = o->depth;
    if (o->heads) c->heads = o->heads;
    if (o->dec_dim) c->dec_dim = o->dec_dim;
    if (o->dec_depth) c->dec_depth = o->dec_depth;
    if (o->dec_heads) c->dec_heads = o->dec_heads;
    c->mlp_ratio = o->mlp_ratio, c->drop_path = o->drop_path, c->mask_ratio = o->mask_ratio;
    c->num_frames = m->num_frames, c->input_size = m->input_size;
    c->patch = m->input_size / m->video.grid_h;
    c->tubelet = m->num_frames / m->video.grid_t;
    c->img_dim = m->image.feature_dim, c->vid_dim = m->video.feature_dim;
    c->max_batch = o->batch;
    if (student_config_check(c, err) != 0) return -1;
    cache_geometry want = {.num_frames = (int)c->num_frames, .input_size = (int)c->input_size,
                           .grid_t = (int)(c->num_frames / c->tubelet), .grid_h = (int)(c->input_size / c->patch),
                           .grid_w = (int)(c->input_size / c->patch), .image_feature_dim = (int)c->img_dim,
                           .video_feature_dim = (int)c->vid_dim};
    return cache_meta_check_geometry(m, &want, err);
}

/* Steps, warmup and the effective learning rates, as the reference scales them. */
static int configure_schedule(train_run *run, mvd_err *err) {
    train_options *o = &run->opt;
    int64_t per_step = o->batch * o->accum;
    run->steps_per_epoch = loader_num_videos(run->data) / per_step;
    if (run->steps_per_epoch < 1)
        return mvd_fail(err, "%s: %lld videos cannot fill one step of %lld clips (batch x accum)", o->cache_dir,
                        (long long)loader_num_videos(run->data), (long long)per_step);
    int64_t total = o->steps ? o->steps : o->epochs * run->steps_per_epoch;
    int64_t warmup = o->warmup_steps >= 0 ? o->warmup_steps : o->warmup_epochs * run->steps_per_epoch;
    if (warmup > total) warmup = total;
    run->lr = o->base_lr * (double)per_step / 256.0;
    run->min_lr = o->base_min_lr * (double)per_step / 256.0;
    run->pos = (train_position){.step = 0, .seed = o->seed, .batch = o->batch, .accum = o->accum,
                                .total_steps = total, .warmup_steps = warmup};
    /* The cache is named by a hash of its settings and its clip count, so a resumed run sees the same data. */
    cJSON *meta = cache_meta_to_json(loader_meta(run->data));
    char *meta_text = cJSON_PrintUnformatted(meta), cache_sha[65];
    sha256_hex(meta_text, strlen(meta_text), cache_sha);
    cJSON_free(meta_text);
    cJSON_Delete(meta);
    snprintf(run->pos.settings, sizeof run->pos.settings,
             "cache=%.16s clips=%lld base-lr=%.9g base-min-lr=%.9g weight-decay=%.9g clip-grad=%.9g w-img=%.9g "
             "w-vid=%.9g drop-path=%.9g mask-ratio=%.9g",
             cache_sha, (long long)loader_num_clips(run->data), o->base_lr, o->base_min_lr, o->weight_decay,
             o->clip_grad, o->w_img, o->w_vid, o->drop_path, o->mask_ratio);
    return 0;
}

/* Names the first setting of a saved run that differs from this run's ("key=value" words of the settings). */
static int compare_settings(const char *saved, const char *now, const char *dir, mvd_err *err) {
    while (*saved || *now) {
        size_t a = strcspn(saved, " "), b = strcspn(now, " ");
        if (a != b || strncmp(saved, now, a) != 0)
            return mvd_fail(err, "%s: the saved run has %.*s, this run %.*s; resume with the same options and cache",
                            dir, (int)a, saved, (int)b, now);
        saved += a + (saved[a] == ' '), now += b + (now[b] == ' ');
    }
    return 0;
}

static int compare_positions(const train_position *saved, const train_position *now, const char *dir, mvd_err *err) {
    const struct {
        const char *name;
        int64_t saved, now;
    } fields[] = {{"seed", (int64_t)saved->seed, (int64_t)now->seed}, {"batch", saved->batch, now->batch},
                  {"accum", saved->accum, now->accum}, {"total steps", saved->total_steps, now->total_steps},
                  {"warmup steps", saved->warmup_steps, now->warmup_steps}};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (fields[i].saved != fields[i].now)
            return mvd_fail(err, "%s: the saved run has %s %lld, this run %lld; resume with the same options", dir,
                            fields[i].name, (long long)fields[i].saved, (long long)fields[i].now);
    return compare_settings(saved->settings, now->settings, dir, err);
}

static int resume_run(train_run *run, mvd_err *err) {
    char *path = path_join(run->opt.out_dir, CHECKPOINT_STUDENT_FILE);
    run->model = student_load(&run->cfg, path, err);
    free(path);
    if (!run->model) return -1;
    train_position saved;
    adamw_init(&run->optim, &run->model->tab, 0.9f, 0.95f, 1e-8f);
    if (checkpoint_load_state(run->opt.out_dir, run->model, &run->optim, &saved, err) != 0) return -1;
    if (compare_positions(&saved, &run->pos, run->opt.out_dir, err) != 0) return -1;
    run->pos.step = saved.step;
    mvd_info("resumed %s at step %lld", run->opt.out_dir, (long long)run->pos.step);
    return 0;
}

static int create_model(train_run *run, mvd_err *err) {
    if (run->opt.resume) return resume_run(run, err);
    run->model = run->opt.init_path ? student_load(&run->cfg, run->opt.init_path, err)
                                    : student_create(&run->cfg, run->opt.seed, err);
    if (!run->model) return -1;
    adamw_init(&run->optim, &run->model->tab, 0.9f, 0.95f, 1e-8f);
    return 0;
}

/* Keeps the records of steps before `first_step` (a resumed run rewrites what follows). */
static int open_metrics(train_run *run, mvd_err *err) {
    char *path = path_join(run->opt.out_dir, "metrics.jsonl");
    char *kept = NULL;
    size_t kept_len = 0;
    FILE *old = run->pos.step > 0 ? fopen(path, "r") : NULL;
    if (old) {
        FILE *mem = open_memstream(&kept, &kept_len);
        char line[4096];
        while (mem && fgets(line, sizeof line, old)) {
            cJSON *rec = cJSON_Parse(line);
            const cJSON *step = cJSON_GetObjectItemCaseSensitive(rec, "step");
            if (cJSON_IsNumber(step) && step->valuedouble <= (double)run->pos.step) fputs(line, mem);
            cJSON_Delete(rec);
        }
        if (mem) fclose(mem);
        fclose(old);
    }
    run->metrics = fopen(path, "w");
    if (run->metrics && kept) fwrite(kept, 1, kept_len, run->metrics);
    free(kept);
    int rc = run->metrics ? 0 : mvd_fail(err, "%s: cannot write", path);
    free(path);
    return rc;
}

static void record_step(train_run *run, int64_t epoch, const student_losses *l, double gnorm, double clips_per_s) {
    int64_t step = run->pos.step; /* 1-based: the update just done */
    if (run->metrics) {
        fprintf(run->metrics,
                "{\"step\":%lld,\"epoch\":%lld,\"loss\":%.9g,\"loss_img\":%.9g,\"loss_vid\":%.9g,\"lr\":%.9g,"
                "\"grad_norm\":%.9g,\"clips_per_s\":%.4g}\n",
                (long long)step, (long long)epoch, l->loss, l->loss_img, l->loss_vid, run->lr_now, gnorm, clips_per_s);
        fflush(run->metrics);
    }
    if (step % run->opt.log_every == 0 || step == run->pos.total_steps)
        printf("step %lld/%lld  epoch %lld  loss %.5f (img %.5f, vid %.5f)  lr %.3e  grad_norm %.4f  %.2f clips/s\n",
               (long long)step, (long long)run->pos.total_steps, (long long)epoch, l->loss, l->loss_img, l->loss_vid,
               run->lr_now, gnorm, clips_per_s);
    fflush(stdout);
}

#define STEP_NON_FINITE (-2)

/* One optimiser update: accum micro-batches forward and backward, then AdamW. Returns 0; -1 with err on a data
 * error; STEP_NON_FINITE with err on a non-finite loss or gradient. On failure the update is not applied, so
 * the parameters and moments are still those of the last completed step. */
static int train_step(train_run *run, student_losses *mean, double *gnorm, mvd_err *err) {
    const train_options *o = &run->opt;
    int64_t step = run->pos.step, epoch = step / run->steps_per_epoch, in_epoch = step % run->steps_per_epoch;
    student *s = run->model;
    memset(mean, 0, sizeof *mean);
    student_zero_grads(s);
    for (int64_t micro = 0; micro < o->accum; micro++) {
        loader_batch *b = loader_batch_buffers(run->data);
        if (loader_fill(run->data, epoch, (in_epoch * o->accum + micro) * o->batch, b, err) != 0) return -1;
        uint64_t key = rng_key(o->seed, (uint64_t)step, (uint64_t)micro, DROP_PATH_RNG_TAG);
        student_draw_drop_keep(s, key, o->batch, run->drop_keep);
        student_batch batch = {.B = o->batch, .clips = b->clips, .masks = b->masks, .target_img = b->target_img,
                               .target_vid = b->target_vid, .drop_keep = run->drop_keep,
                               .w_img = (float)o->w_img, .w_vid = (float)o->w_vid};
        student_losses l;
        if (student_forward(s, &batch, &l, err) != 0) return -1;
        if (!isfinite(l.loss)) {
            mvd_fail(err, "non-finite loss %g at step %lld (image %g, video %g); stopping, the last good checkpoint "
                     "is kept", l.loss, (long long)step + 1, l.loss_img, l.loss_vid);
            return STEP_NON_FINITE;
        }
        student_backward(s);
        mean->loss += l.loss / (double)o->accum;
        mean->loss_img += l.loss_img / (double)o->accum;
        mean->loss_vid += l.loss_vid / (double)o->accum;
    }
    /* The loss of an update is the mean over its micro-batches, so are its gradients. */
    if (o->accum > 1) scale_inplace(s->grads, 1.0f / (float)o->accum, s->tab.total);
    *gnorm = o->clip_grad > 0 ? clip_grad_norm(&s->tab, s->grads, o->clip_grad) : grad_norm(&s->tab, s->grads);
    if (!isfinite(*gnorm)) {
        mvd_fail(err, "non-finite gradient norm at step %lld; stopping, the last good checkpoint is kept",
                 (long long)step + 1);
        return STEP_NON_FINITE;
    }
    run->lr_now = cosine_schedule(run->lr, run->min_lr, run->pos.warmup_steps, run->pos.total_steps, step);
    adamw_step(&run->optim, s->params, s->grads, (float)run->lr_now, (float)o->weight_decay);
    run->pos.step++;
    return 0;
}

static void note_loss(train_run *run, double loss) {
    int64_t step = run->pos.step, total = run->pos.total_steps;
    if (step <= 10) run->loss_sum[0] += loss, run->loss_count[0]++;
    if (step > total - 10) run->loss_sum[1] += loss, run->loss_count[1]++;
}

static int save(train_run *run, mvd_err *err) {
    if (checkpoint_save(run->opt.out_dir, run->model, &run->optim, &run->pos, err) != 0) return -1;
    mvd_info("checkpoint at step %lld written to %s/%s", (long long)run->pos.step, run->opt.out_dir,
             CHECKPOINT_STUDENT_FILE);
    return 0;
}

/* A data error (an unreadable or changed video) leaves the model at its last completed step: save it, so a
 * long run loses nothing, then report the error. */
static int save_after_data_error(train_run *run, mvd_err *err) {
    if (run->pos.step == 0) return -1;
    mvd_err cause = *err, save_err;
    if (save(run, &save_err) != 0)
        return mvd_fail(err, "%s; saving a checkpoint failed too: %s", cause.msg, save_err.msg);
    return mvd_fail(err, "%s; the checkpoint at step %lld is saved: continue with --resume once the data is fixed",
                    cause.msg, (long long)run->pos.step);
}

/* Returns 0 when the run is complete, EXIT_STOPPED when stopped early, -1 on error. */
static int train_loop(train_run *run, mvd_err *err) {
    const train_options *o = &run->opt;
    while (run->pos.step < run->pos.total_steps) {
        double t0 = now_seconds(), gnorm = 0;
        student_losses l;
        int rc = train_step(run, &l, &gnorm, err);
        if (rc == STEP_NON_FINITE) return -1;
        if (rc != 0) return save_after_data_error(run, err);
        double clips_per_s = (double)(o->batch * o->accum) / (now_seconds() - t0);
        record_step(run, (run->pos.step - 1) / run->steps_per_epoch, &l, gnorm, clips_per_s);
        note_loss(run, l.loss);
        int stop = stop_requested || (o->stop_at && run->pos.step >= o->stop_at);
        if (stop || (o->save_every && run->pos.step % o->save_every == 0) || run->pos.step == run->pos.total_steps)
            if (save(run, err) != 0) return -1;
        if (stop) {
            mvd_info("stopped at step %lld (%s); continue with --resume", (long long)run->pos.step,
                     stop_requested ? "signal" : "--stop-at");
            return EXIT_STOPPED;
        }
    }
    return 0;
}

static void echo_config(const train_run *run) {
    const train_options *o = &run->opt;
    const student_config *c = &run->cfg;
    mvd_info("mvd-train %s: cache %s (%lld clips of %lld videos), run folder %s", MVD_VERSION, o->cache_dir,
             (long long)loader_num_clips(run->data), (long long)loader_num_videos(run->data), o->out_dir);
    mvd_info("  student: dim %lld depth %lld heads %lld, decoders dim %lld depth %lld heads %lld, mlp x%g, "
             "%lld params", (long long)c->dim, (long long)c->depth, (long long)c->heads, (long long)c->dec_dim,
             (long long)c->dec_depth, (long long)c->dec_heads, c->mlp_ratio,
             (long long)ptab_trainable_numel(&run->model->tab));
    mvd_info("  clips %lld x %lld px, %lld tokens, %lld visible (mask ratio %g), targets %lld + %lld dims",
             (long long)c->num_frames, (long long)c->input_size, (long long)run->model->n_tokens,
             (long long)run->model->n_visible, c->mask_ratio, (long long)c->img_dim, (long long)c->vid_dim);
    mvd_info("  batch %lld x accum %lld, %lld steps/epoch, %lld steps, warmup %lld; lr %.4g min_lr %.4g "
             "(base %.4g / %.4g x %lld/256), wd %g, drop path %g, clip %g, seed %llu, %d threads",
             (long long)o->batch, (long long)o->accum, (long long)run->steps_per_epoch,
             (long long)run->pos.total_steps, (long long)run->pos.warmup_steps, run->lr, run->min_lr, o->base_lr,
             o->base_min_lr, (long long)(o->batch * o->accum), o->weight_decay, o->drop_path, o->clip_grad,
             (unsigned long long)o->seed, omp_get_max_threads());
}

/* A new run never overwrites another's checkpoint: that run is continued with --resume or left alone. */
static int refuse_existing_run(const char *dir, mvd_err *err) {
    char *path = path_join(dir, CHECKPOINT_STUDENT_FILE);
    int exists = file_exists(path);
    free(path);
    if (!exists) return 0;
    return mvd_fail(err, "%s already holds a run's checkpoint; continue it with --resume, or choose another --out",
                    dir);
}

static int setup(train_run *run, mvd_err *err) {
    const train_options *o = &run->opt;
    if (loader_open(&run->data, o->cache_dir, o->data_root, o->pixel_check, o->batch, o->mask_ratio, o->seed,
                    err) != 0)
        return -1;
    if (configure_student(run, err) != 0 || configure_schedule(run, err) != 0) return -1;
    if (!o->resume && refuse_existing_run(o->out_dir, err) != 0) return -1;
    if (mkdir_p(o->out_dir, err) != 0 || create_model(run, err) != 0) return -1;
    run->drop_keep = xmalloc((size_t)(run->model->n_blocks_total * 2 * o->batch));
    return open_metrics(run, err);
}

static void summary(const train_run *run, int status, double secs) {
    printf("mvd-train: %s at step %lld/%lld in %.1f s",
           status == 0 ? "finished" : status == EXIT_STOPPED ? "stopped" : "failed", (long long)run->pos.step,
           (long long)run->pos.total_steps, secs);
    if (run->loss_count[0] && run->loss_count[1])
        printf("; mean loss of the first %lld steps %.5f, of the last %lld steps %.5f", (long long)run->loss_count[0],
               run->loss_sum[0] / (double)run->loss_count[0], (long long)run->loss_count[1],
               run->loss_sum[1] / (double)run->loss_count[1]);
    printf("\n");
}

int main(int argc, char **argv) {
    cli_prefer_passive_openmp(argv);
    cli_program = "mvd-train";
    train_run run;
    memset(&run, 0, sizeof run);
    parse_options(argc, argv, &run.opt);
    k_set_threads(run.opt.threads);
    video_quiet_ffmpeg_log();
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    mvd_err err;
    double t0 = now_seconds();
    int status = setup(&run, &err);
    if (status == 0) {
        echo_config(&run);
        status = train_loop(&run, &err);
    }
    if (status < 0) fprintf(stderr, "mvd-train: error: %s\n", err.msg);
    if (run.metrics) summary(&run, status, now_seconds() - t0); /* set up fully: the loop ran */
    if (run.metrics) fclose(run.metrics);
    free(run.drop_keep);
    if (run.model) adamw_free(&run.optim), student_free(run.model);
    loader_close(run.data);
    return status < 0 ? 1 : status;
}
