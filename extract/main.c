/* mvd-extract: runs the image and video teachers once over a list of videos and stores their per-token
 * targets in a sharded, self-describing HDF5 cache (schemas/cache-v1.md).
 *
 * Pipeline per video: probe (a full decode pass: the true frame count) -> for each view, sample the clip spec
 * (frame indices, crop) from the seed -> decode + crop + resize (PIL bilinear) -> SHA-256 of the pixels ->
 * teachers -> optional LayerNorm of the targets -> append to the shard.
 *
 * Shard s holds the clips of videos [s*V, (s+1)*V) with V = max(1, shard_size / views), so a shard's content is
 * fixed by the list and the settings: re-running the same command skips the shards the manifest lists and
 * redoes an interrupted one from scratch. A video fails (and is skipped, recorded in the manifest) only when a
 * requested frame cannot be produced; its views are all decoded before any is stored, so a video is either
 * wholly in the cache or wholly absent. Exit status: 0 all done, 2 some videos skipped, 1 fatal error. */
#include <getopt.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache.h"
#include "cache_meta.h"
#include "cli.h"
#include "clip.h"
#include "datalist.h"
#include "kernels.h"
#include "manifest.h"
#include "teacher.h"
#include "video.h"

typedef struct {
    const char *list_path, *data_root, *out_dir;
    const char *image_weights, *video_weights;
    const char *image_provenance, *video_provenance;
    int random_teachers;
    uint64_t random_seed;
    clip_params clip;
    int image_input_size; /* 0: the student's input size */
    int views, shard_size, zstd_level, norm_feature, threads;
    const char *dtype;
    teacher_config image, video;
} extract_options;

/* Everything one run holds; the buffers are sized once for one clip. */
typedef struct {
    extract_options opt;
    datalist list;
    cache_meta meta;
    cache_manifest manifest;
    teacher *image, *video;
    int64_t tokens;
    uint8_t *frames, *image_frames; /* [T][S][S][3] student size; image teacher size */
    float *video_input, *image_input;
    float *image_targets, *video_targets; /* [views][tokens][D] */
    clip_spec *specs;                     /* [views] */
    int64_t clips_done, clips_cached, videos_failed; /* this run's new clips; clips of shards already done */
} extract_run;

static const char *usage_text =
    "Usage: mvd-extract --list FILE --data-root DIR --out CACHE_DIR [options]\n"
    "Runs the image and video teachers over every video of a list once and stores their per-token targets\n"
    "in a sharded HDF5 cache that mvd-train reads.\n"
    "\n"
    "Input and output:\n"
    "  --list FILE             video list, one 'path label' per line (label last; '#' comments)\n"
    "  --data-root DIR         folder the list's paths are relative to\n"
    "  --out DIR               cache folder (created; re-running resumes, other settings are refused)\n"
    "Clips:\n"
    "  --frames N              frames per clip (16)\n"
    "  --frame-stride N        distance between sampled frames (4)\n"
    "  --input-size N          student input side in pixels (224)\n"
    "  --image-input-size N    image teacher input side (default: the student's grid x its patch: 224 for\n"
    "                          a /16 teacher, 196 for ViT-H/14)\n"
    "  --crop multiscale|center  MVD's multi-scale crop (default) or the centred square\n"
    "  --views K               clips per video (1)\n"
    "  --seed N                seed of every random choice (0)\n"
    "Teachers (safetensors with the reference key names; see scripts/convert_checkpoint.py):\n"
    "  --image-teacher FILE    MAE image ViT weights\n"
    "  --video-teacher FILE    VideoMAE video ViT weights\n"
    "  --random-teachers SEED  write seeded random teachers into CACHE_DIR/teachers/ and use them\n"
    "  --image-size B|L|H      image teacher architecture (B); H is ViT-H/14 at 196 px\n"
    "  --video-size B|L|H      video teacher architecture (B)\n"
    "  --image-dim/--image-depth/--image-heads/--image-patch N   override the image architecture\n"
    "  --video-dim/--video-depth/--video-heads N                 override the video architecture\n"
    "  --image-provenance TEXT, --video-provenance TEXT          origin/licence recorded in the cache\n"
    "Targets and storage:\n"
    "  --norm-feature          LayerNorm (no affine, eps 1e-6) each target token before storing\n"
    "  --dtype float16|float32 stored element type (float16)\n"
    "  --zstd-level N          zstd level (3)\n"
    "  --shard-size N          clips per shard at most (256)\n"
    "  --threads N             CPU threads (all cores)\n"
    "  --help, --version\n"
    "Exit status: 0 everything done, 2 some videos skipped (listed in the manifest), 1 fatal error.\n";

enum {
    OPT_LIST = 256, OPT_DATA_ROOT, OPT_OUT, OPT_FRAMES, OPT_STRIDE, OPT_INPUT, OPT_IMAGE_INPUT, OPT_CROP,
    OPT_VIEWS, OPT_SEED, OPT_IMAGE_W, OPT_VIDEO_W, OPT_RANDOM, OPT_IMAGE_SIZE, OPT_VIDEO_SIZE, OPT_IMAGE_DIM,
    OPT_IMAGE_DEPTH, OPT_IMAGE_HEADS, OPT_IMAGE_PATCH, OPT_VIDEO_DIM, OPT_VIDEO_DEPTH, OPT_VIDEO_HEADS,
    OPT_IMAGE_PROV, OPT_VIDEO_PROV, OPT_NORM, OPT_DTYPE, OPT_ZSTD, OPT_SHARD, OPT_THREADS, OPT_HELP, OPT_VERSION
};

static const struct option long_options[] = {
    {"list", 1, 0, OPT_LIST}, {"data-root", 1, 0, OPT_DATA_ROOT}, {"out", 1, 0, OPT_OUT},
    {"frames", 1, 0, OPT_FRAMES}, {"frame-stride", 1, 0, OPT_STRIDE}, {"input-size", 1, 0, OPT_INPUT},
    {"image-input-size", 1, 0, OPT_IMAGE_INPUT}, {"crop", 1, 0, OPT_CROP}, {"views", 1, 0, OPT_VIEWS},
    {"seed", 1, 0, OPT_SEED}, {"image-teacher", 1, 0, OPT_IMAGE_W}, {"video-teacher", 1, 0, OPT_VIDEO_W},
    {"random-teachers", 1, 0, OPT_RANDOM}, {"image-size", 1, 0, OPT_IMAGE_SIZE},
    {"video-size", 1, 0, OPT_VIDEO_SIZE}, {"image-dim", 1, 0, OPT_IMAGE_DIM}, {"image-depth", 1, 0, OPT_IMAGE_DEPTH},
    {"image-heads", 1, 0, OPT_IMAGE_HEADS}, {"image-patch", 1, 0, OPT_IMAGE_PATCH},
    {"video-dim", 1, 0, OPT_VIDEO_DIM}, {"video-depth", 1, 0, OPT_VIDEO_DEPTH},
    {"video-heads", 1, 0, OPT_VIDEO_HEADS}, {"image-provenance", 1, 0, OPT_IMAGE_PROV},
    {"video-provenance", 1, 0, OPT_VIDEO_PROV}, {"norm-feature", 0, 0, OPT_NORM}, {"dtype", 1, 0, OPT_DTYPE},
    {"zstd-level", 1, 0, OPT_ZSTD}, {"shard-size", 1, 0, OPT_SHARD}, {"threads", 1, 0, OPT_THREADS},
    {"help", 0, 0, OPT_HELP}, {"version", 0, 0, OPT_VERSION}, {0, 0, 0, 0}};

static void set_preset(teacher_config *c, teacher_kind kind, const char *size) {
    mvd_err err;
    if (teacher_config_preset(c, kind, size, &err) != 0) cli_usage_error("%s", err.msg);
}

static void parse_options(int argc, char **argv, extract_options *o) {
    static const char *const crops[] = {"multiscale", "center", NULL};
    static const char *const dtypes[] = {CACHE_DTYPE_F16, CACHE_DTYPE_F32, NULL};
    memset(o, 0, sizeof *o);
    o->clip = (clip_params){.num_frames = 16, .frame_stride = 4, .input_size = 224, .crop = CROP_MULTISCALE};
    o->views = 1, o->shard_size = 256, o->zstd_level = 3, o->dtype = CACHE_DTYPE_F16;
    set_preset(&o->image, TEACHER_IMAGE, "B");
    set_preset(&o->video, TEACHER_VIDEO, "B");
    /* Overrides are applied after the loop so they win over a preset given later on the line. */
    int over[8] = {0};
    int opt;
    while ((opt = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
        switch (opt) {
        case OPT_LIST: o->list_path = optarg; break;
        case OPT_DATA_ROOT: o->data_root = optarg; break;
        case OPT_OUT: o->out_dir = optarg; break;
        case OPT_FRAMES: o->clip.num_frames = cli_int("frames", optarg, 2, CLIP_MAX_FRAMES); break;
        case OPT_STRIDE: o->clip.frame_stride = cli_int("frame-stride", optarg, 1, 1000); break;
        case OPT_INPUT: o->clip.input_size = cli_int("input-size", optarg, 8, 4096); break;
        case OPT_IMAGE_INPUT: o->image_input_size = cli_int("image-input-size", optarg, 8, 4096); break;
        case OPT_CROP: o->clip.crop = cli_choice("crop", optarg, crops) == 0 ? CROP_MULTISCALE : CROP_CENTER; break;
        case OPT_VIEWS: o->views = cli_int("views", optarg, 1, 1000); break;
        case OPT_SEED: o->clip.seed = cli_u64("seed", optarg); break;
        case OPT_IMAGE_W: o->image_weights = optarg; break;
        case OPT_VIDEO_W: o->video_weights = optarg; break;
        case OPT_RANDOM: o->random_teachers = 1, o->random_seed = cli_u64("random-teachers", optarg); break;
        case OPT_IMAGE_SIZE: set_preset(&o->image, TEACHER_IMAGE, optarg); break;
        case OPT_VIDEO_SIZE: set_preset(&o->video, TEACHER_VIDEO, optarg); break;
        case OPT_IMAGE_DIM: over[0] = cli_int("image-dim", optarg, 8, 8192); break;
        case OPT_IMAGE_DEPTH: over[1] = cli_int("image-depth", optarg, 1, 256); break;
        case OPT_IMAGE_HEADS: over[2] = cli_int("image-heads", optarg, 1, 256); break;
        case OPT_IMAGE_PATCH: over[3] = cli_int("image-patch", optarg, 1, 256); break;
        case OPT_VIDEO_DIM: over[4] = cli_int("video-dim", optarg, 8, 8192); break;
        case OPT_VIDEO_DEPTH: over[5] = cli_int("video-depth", optarg, 1, 256); break;
        case OPT_VIDEO_HEADS: over[6] = cli_int("video-heads", optarg, 1, 256); break;
        case OPT_IMAGE_PROV: o->image_provenance = optarg; break;
        case OPT_VIDEO_PROV: o->video_provenance = optarg; break;
        case OPT_NORM: o->norm_feature = 1; break;
        case OPT_DTYPE: o->dtype = dtypes[cli_choice("dtype", optarg, dtypes)]; break;
        case OPT_ZSTD: o->zstd_level = cli_int("zstd-level", optarg, -131072, 22); break;
        case OPT_SHARD: o->shard_size = cli_int("shard-size", optarg, 1, 1 << 20); break;
        case OPT_THREADS: o->threads = cli_int("threads", optarg, 1, 1024); break;
        case OPT_HELP: fputs(usage_text, stdout); exit(0);
        case OPT_VERSION: printf("mvd-extract %s (FFmpeg %s)\n", MVD_VERSION, video_ffmpeg_version()); exit(0);
        default: cli_usage_error("unknown or incomplete option");
        }
    }
    if (optind < argc) cli_usage_error("unexpected argument '%s'", argv[optind]);
    if (!o->list_path || !o->data_root || !o->out_dir) cli_usage_error("--list, --data-root and --out are required");
    if (o->shard_size < o->views)
        cli_usage_error("--shard-size %d cannot hold the %d views of one video", o->shard_size, o->views);
    if (!o->random_teachers && (!o->image_weights || !o->video_weights))
        cli_usage_error("give --image-teacher and --video-teacher, or --random-teachers SEED");
    if (o->random_teachers && (o->image_weights || o->video_weights))
        cli_usage_error("--random-teachers cannot be combined with --image-teacher/--video-teacher");
    if (over[0]) o->image.dim = over[0];
    if (over[1]) o->image.depth = over[1];
    if (over[2]) o->image.heads = over[2];
    if (over[3]) o->image.patch = over[3];
    if (over[4]) o->video.dim = over[4];
    if (over[5]) o->video.depth = over[5];
    if (over[6]) o->video.heads = over[6];
    /* By default the image teacher sees the crop at the size that gives the student's token grid with its own
     * patch: the student's size for a /16 teacher, 196 px for ViT-H/14. */
    if (!o->image_input_size) o->image_input_size = o->clip.input_size / (int)o->video.patch * (int)o->image.patch;
    /* The teachers see the student's clip geometry; the image teacher keeps its own input side. */
    o->video.input_size = o->clip.input_size;
    o->video.num_frames = o->image.num_frames = o->clip.num_frames;
    o->image.input_size = o->image_input_size;
    o->image.tubelet = o->video.tubelet;
    o->image.max_batch = o->video.max_batch = 1;
}

static void fill_teacher_meta(cache_teacher *t, const teacher *model, const char *kind, const char *weights_sha,
                              const char *provenance, int random_init) {
    const teacher_config *c = &model->c;
    snprintf(t->kind, sizeof t->kind, "%s", kind);
    t->dim = (int)c->dim, t->depth = (int)c->depth, t->heads = (int)c->heads;
    t->mlp_hidden = (int)(c->dim * c->mlp_ratio);
    t->patch = (int)c->patch;
    t->tubelet = c->kind == TEACHER_VIDEO ? (int)c->tubelet : 1;
    t->input_size = (int)c->input_size;
    t->grid_t = (int)model->t, t->grid_h = (int)model->gh, t->grid_w = (int)model->gw;
    t->feature_dim = (int)c->dim;
    snprintf(t->weights_sha256, sizeof t->weights_sha256, "%s", weights_sha);
    snprintf(t->provenance, sizeof t->provenance, "%s", provenance ? provenance : "");
    t->random_init = random_init;
}

#define RANDOM_IMAGE_TEACHER "teachers/image-teacher.safetensors"
#define RANDOM_VIDEO_TEACHER "teachers/video-teacher.safetensors"
#define CANDIDATE_SUFFIX ".new"

/* Writes the seeded random teachers as candidates beside their final names in <out>/teachers/; they replace
 * the final files only once the cache has accepted this run's settings (keep_random_teachers), so a refused
 * run leaves an existing cache's teachers untouched. The same seed gives the same bytes. */
static int write_random_teachers(extract_options *o, mvd_err *err) {
    char *dir = path_join(o->out_dir, "teachers");
    int rc = mkdir_p(dir, err);
    free(dir);
    char *image = path_join(o->out_dir, RANDOM_IMAGE_TEACHER CANDIDATE_SUFFIX);
    char *video = path_join(o->out_dir, RANDOM_VIDEO_TEACHER CANDIDATE_SUFFIX);
    const char *prov = "random initialisation (mvd-extract --random-teachers); not a trained teacher";
    if (rc == 0) rc = teacher_write_random(&o->image, o->random_seed, image, prov, err);
    if (rc == 0) rc = teacher_write_random(&o->video, o->random_seed + 1, video, prov, err);
    o->image_weights = image, o->video_weights = video; /* owned by the run until exit */
    if (!o->image_provenance) o->image_provenance = prov;
    if (!o->video_provenance) o->video_provenance = prov;
    return rc;
}

static int keep_random_teachers(extract_options *o, mvd_err *err) {
    char *image = path_join(o->out_dir, RANDOM_IMAGE_TEACHER), *video = path_join(o->out_dir, RANDOM_VIDEO_TEACHER);
    int rc = rename_atomic(o->image_weights, image, err);
    if (rc == 0) rc = rename_atomic(o->video_weights, video, err);
    free((char *)o->image_weights), free((char *)o->video_weights);
    o->image_weights = image, o->video_weights = video;
    return rc;
}

/* After a fatal error before any shard: remove what this run created and nothing else (rmdir only removes
 * empty folders, and only the output folder this run made). */
static void discard_partial_output(const extract_run *run, int created_out_dir) {
    const extract_options *o = &run->opt;
    if (o->random_teachers && o->image_weights) { /* the candidates, if they were written */
        unlink(o->image_weights);
        unlink(o->video_weights);
    }
    char *teachers = path_join(o->out_dir, "teachers");
    rmdir(teachers);
    free(teachers);
    if (created_out_dir) rmdir(o->out_dir);
}

/* The list and the data root, checked before any work. */
static int read_inputs(extract_run *run, mvd_err *err) {
    struct stat st;
    if (stat(run->opt.data_root, &st) != 0 || !S_ISDIR(st.st_mode))
        return mvd_fail(err, "--data-root %s: not a readable directory", run->opt.data_root);
    if (datalist_read(run->opt.list_path, &run->list, err) != 0) return -1;
    if (run->list.count == 0) return mvd_fail(err, "%s: the list names no videos", run->opt.list_path);
    return 0;
}

static int load_teachers(extract_run *run, mvd_err *err) {
    extract_options *o = &run->opt;
    if (o->random_teachers && write_random_teachers(o, err) != 0) return -1;
    char image_sha[65], video_sha[65];
    if (sha256_file(o->image_weights, image_sha, err) != 0 || sha256_file(o->video_weights, video_sha, err) != 0)
        return -1;
    run->image = teacher_load(&o->image, o->image_weights, err);
    if (!run->image) return mvd_fail_ctx(err, "image teacher");
    run->video = teacher_load(&o->video, o->video_weights, err);
    if (!run->video) return mvd_fail_ctx(err, "video teacher");
    if (run->image->n_tokens != run->video->n_tokens || run->image->gh != run->video->gh)
        return mvd_fail(err, "the teachers' token grids differ: image %lldx%lldx%lld, video %lldx%lldx%lld "
                        "(the image teacher needs input_size / patch = %lld)",
                        (long long)run->image->t, (long long)run->image->gh, (long long)run->image->gw,
                        (long long)run->video->t, (long long)run->video->gh, (long long)run->video->gw,
                        (long long)run->video->gh);
    fill_teacher_meta(&run->meta.image, run->image, CACHE_KIND_IMAGE_TEACHER, image_sha, o->image_provenance,
                      o->random_teachers);
    fill_teacher_meta(&run->meta.video, run->video, CACHE_KIND_VIDEO_TEACHER, video_sha, o->video_provenance,
                      o->random_teachers);
    run->tokens = run->video->n_tokens;
    return 0;
}

static int build_meta(extract_run *run, mvd_err *err) {
    extract_options *o = &run->opt;
    cache_meta *m = &run->meta; /* initialised in main; the teachers' fields are already filled */
    snprintf(m->ffmpeg_version, sizeof m->ffmpeg_version, "%s", video_ffmpeg_version());
    m->num_frames = o->clip.num_frames, m->frame_stride = o->clip.frame_stride;
    m->input_size = o->clip.input_size, m->image_input_size = o->image_input_size;
    snprintf(m->crop_mode, sizeof m->crop_mode, "%s", o->clip.crop == CROP_CENTER ? "center" : "multiscale");
    m->seed = o->clip.seed, m->views = o->views;
    snprintf(m->colour_conversion, sizeof m->colour_conversion, "%s", video_conversion_desc());
    snprintf(m->device, sizeof m->device, "cpu");
    snprintf(m->precision, sizeof m->precision, "fp32");
    m->norm_feature = o->norm_feature;
    snprintf(m->storage_dtype, sizeof m->storage_dtype, "%s", o->dtype);
    m->zstd_level = o->zstd_level, m->shard_size = o->shard_size;
    m->tokens = (int)run->tokens;
    snprintf(m->list_path, sizeof m->list_path, "%s", o->list_path);
    if (sha256_file(o->list_path, m->list_sha256, err) != 0) return -1;
    return cache_meta_validate(m, err);
}

/* Opens the manifest: a new cache, or an existing one whose settings must equal this run's. */
static int open_manifest(extract_run *run, mvd_err *err) {
    if (mkdir_p(run->opt.out_dir, err) != 0) return -1;
    if (!manifest_exists(run->opt.out_dir)) {
        manifest_init(&run->manifest, run->opt.out_dir, &run->meta);
        return manifest_save(&run->manifest, err);
    }
    if (manifest_load(&run->manifest, run->opt.out_dir, err) != 0) return -1;
    if (cache_meta_same_settings(&run->manifest.meta, &run->meta, err) != 0)
        return mvd_fail_ctx(err, "%s: refusing to add to a cache made with other settings", run->opt.out_dir);
    mvd_info("resuming the cache in %s: %zu shards already complete", run->opt.out_dir, run->manifest.num_shards);
    return 0;
}

static void alloc_buffers(extract_run *run) {
    const extract_options *o = &run->opt;
    int64_t T = o->clip.num_frames, S = o->clip.input_size, Si = o->image_input_size;
    run->frames = xmalloc((size_t)(T * S * S * 3));
    run->image_frames = xmalloc((size_t)(T * Si * Si * 3));
    run->video_input = xmalloc((size_t)teacher_input_numel(&run->video->c) * sizeof(float));
    run->image_input = xmalloc((size_t)teacher_input_numel(&run->image->c) * sizeof(float));
    run->image_targets = xmalloc((size_t)(o->views * run->tokens * run->image->c.dim) * sizeof(float));
    run->video_targets = xmalloc((size_t)(o->views * run->tokens * run->video->c.dim) * sizeof(float));
    run->specs = xcalloc((size_t)o->views, sizeof(clip_spec));
}

/* Decodes one view's pixels and runs both teachers on them. Returns 0, or -1 with err when a frame cannot be
 * produced (the video then fails). */
static int extract_view(extract_run *run, const char *path, const video_info *info, int64_t video_index, int view,
                        mvd_err *err) {
    const extract_options *o = &run->opt;
    clip_spec *spec = &run->specs[view];
    int T = o->clip.num_frames, S = o->clip.input_size, Si = o->image_input_size;
    if (clip_sample(&o->clip, video_index, view, info->num_frames, info->width, info->height, spec, err) != 0)
        return -1;
    uint8_t *crops = xmalloc(clip_crop_bytes(spec));
    int rc = clip_decode(path, info, spec, crops, err);
    if (rc == 0) rc = clip_resize(spec, crops, S, run->frames, err);
    if (rc == 0 && Si != S) rc = clip_resize(spec, crops, Si, run->image_frames, err);
    free(crops);
    if (rc != 0) return -1;
    clip_pixel_sha256(run->frames, T, S, spec->pixel_sha256);
    clip_normalize(run->frames, T, S, run->video_input);
    if (clip_image_teacher_input(Si != S ? run->image_frames : run->frames, T, (int)o->video.tubelet, Si,
                                 run->image_input, err) != 0)
        return -1;
    float *img_out = run->image_targets + (int64_t)view * run->tokens * run->image->c.dim;
    float *vid_out = run->video_targets + (int64_t)view * run->tokens * run->video->c.dim;
    if (teacher_forward(run->image, run->image_input, 1, o->norm_feature, img_out, err) != 0 ||
        teacher_forward(run->video, run->video_input, 1, o->norm_feature, vid_out, err) != 0)
        return -1;
    return 0;
}

/* Extracts every view of one video into the shard. Returns 0 done, 1 video skipped (reason recorded),
 * -1 fatal (writing the shard failed). */
static int extract_video(extract_run *run, int64_t v, cache_shard_writer *w, mvd_err *err) {
    const datalist_entry *e = &run->list.entries[v];
    char *path = path_join(run->opt.data_root, e->path);
    video_info info;
    mvd_err why;
    double t0 = now_seconds();
    int probed = video_probe(path, &info, &why) == 0, failed = !probed;
    for (int view = 0; !failed && view < run->opt.views; view++)
        failed = extract_view(run, path, &info, v, view, &why) != 0;
    int64_t frames = probed ? info.num_frames : 0;
    if (probed) video_info_free(&info);
    free(path);
    if (failed) {
        mvd_warn("skipping video %lld/%lld (%s, list line %lld): %s", (long long)v + 1, (long long)run->list.count,
                 e->path, (long long)e->line, why.msg);
        run->videos_failed++;
        return manifest_add_failure(&run->manifest, v, e->path, why.msg, err) == 0 ? 1 : -1;
    }
    for (int view = 0; view < run->opt.views; view++) {
        cache_clip clip = {.spec = run->specs[view], .path = e->path, .label = e->label, .video_frames = frames};
        const float *img = run->image_targets + (int64_t)view * run->tokens * run->image->c.dim;
        const float *vid = run->video_targets + (int64_t)view * run->tokens * run->video->c.dim;
        if (cache_shard_writer_append(w, &clip, img, vid, err) != 0) return -1;
    }
    run->clips_done += run->opt.views;
    mvd_info("video %lld/%lld %s: %lld frames, %d view(s), %.2f s", (long long)v + 1, (long long)run->list.count,
             e->path, (long long)frames, run->opt.views, now_seconds() - t0);
    return 0;
}

/* 1 when the manifest lists the shard and the file is there with the recorded SHA-256; a listed shard that is
 * missing or changed is dropped from the manifest (with a warning) so it is made again. */
/* The shard file holds what its manifest entry says (cache_shard_reader_check_entry). */
static int shard_matches_entry(const char *path, const cache_shard_info *listed) {
    cache_shard_reader *r;
    mvd_err why;
    if (cache_shard_reader_open(&r, path, &why) != 0) return 0;
    int same = cache_shard_reader_check_entry(r, listed, &why) == 0;
    cache_shard_reader_close(r);
    return same;
}

static int shard_is_done(extract_run *run, const char *name, mvd_err *err) {
    const cache_shard_info *listed = manifest_find_shard(&run->manifest, name);
    if (!listed) return 0;
    char *path = path_join(run->opt.out_dir, name), sha[65] = "";
    mvd_err why;
    int intact = file_exists(path) && sha256_file(path, sha, &why) == 0 && strcmp(sha, listed->sha256) == 0 &&
                 shard_matches_entry(path, listed);
    if (!intact) mvd_warn("%s: missing, changed, or not what the manifest says; making it again", path);
    free(path);
    if (intact) return 1;
    return manifest_drop_shard(&run->manifest, name, err) == 0 ? 0 : -1;
}

static int extract_shard(extract_run *run, int shard, int64_t first, int64_t end, mvd_err *err) {
    char name[CACHE_SHARD_NAME_MAX];
    cache_shard_name(shard, name);
    int done = shard_is_done(run, name, err);
    if (done < 0) return -1;
    if (done) {
        mvd_info("%s: already complete, skipped", name);
        run->clips_cached += manifest_find_shard(&run->manifest, name)->clips;
        return 0;
    }
    /* failures an interrupted earlier run recorded for these videos are found again */
    manifest_forget_failures(&run->manifest, first, end);
    cache_shard_writer *w;
    if (cache_shard_writer_open(&w, run->opt.out_dir, shard, &run->meta, err) != 0) return -1;
    for (int64_t v = first; v < end; v++) {
        if (extract_video(run, v, w, err) < 0) {
            cache_shard_writer_abort(w);
            return -1;
        }
    }
    cache_shard_info info;
    if (cache_shard_writer_finish(w, &info, err) != 0) return -1;
    /* The manifest carries each shard's hash so a copied or shared cache can be verified file by file. */
    char *path = path_join(run->opt.out_dir, name);
    int rc = sha256_file(path, info.sha256, err);
    free(path);
    if (rc != 0 || manifest_add_shard(&run->manifest, &info, err) != 0) return -1;
    mvd_info("%s: %lld clips written", name, (long long)info.clips);
    return 0;
}

/* Drops manifest entries for shards this list and these settings do not make (a hand-edited manifest). */
static int forget_unexpected_shards(extract_run *run, int64_t n_shards, mvd_err *err) {
    for (size_t i = 0; i < run->manifest.num_shards;) {
        const char *file = run->manifest.shards[i].file;
        int index = -1, used = 0;
        if (sscanf(file, "shard-%d.h5%n", &index, &used) == 1 && file[used] == '\0' && index >= 0 &&
            index < n_shards) {
            i++;
            continue;
        }
        mvd_warn("%s/%s: listed in the manifest but not a shard of this list; forgetting it", run->opt.out_dir, file);
        char name[CACHE_SHARD_NAME_MAX];
        snprintf(name, sizeof name, "%s", file);
        if (manifest_drop_shard(&run->manifest, name, err) != 0) return -1;
    }
    return 0;
}

static int run_extraction(extract_run *run, mvd_err *err) {
    int64_t per_shard = run->opt.shard_size / run->opt.views;
    if (per_shard < 1) per_shard = 1;
    int64_t n = run->list.count;
    if (forget_unexpected_shards(run, (n + per_shard - 1) / per_shard, err) != 0) return -1;
    for (int64_t first = 0, shard = 0; first < n; first += per_shard, shard++) {
        int64_t end = first + per_shard < n ? first + per_shard : n;
        if (extract_shard(run, (int)shard, first, end, err) != 0) return -1;
    }
    return manifest_set_complete(&run->manifest, 1, err);
}

static void echo_config(const extract_run *run) {
    const extract_options *o = &run->opt;
    const teacher_config *i = &run->image->c, *v = &run->video->c;
    mvd_info("mvd-extract %s: %lld videos from %s -> %s", MVD_VERSION, (long long)run->list.count, o->list_path,
             o->out_dir);
    mvd_info("  clips: %d frames, stride %d, %d px (image teacher %d px), %s crop, %d view(s), seed %llu",
             o->clip.num_frames, o->clip.frame_stride, o->clip.input_size, o->image_input_size,
             o->clip.crop == CROP_CENTER ? "center" : "multiscale", o->views, (unsigned long long)o->clip.seed);
    mvd_info("  image teacher: ViT dim %lld depth %lld heads %lld patch %lld (%s)", (long long)i->dim,
             (long long)i->depth, (long long)i->heads, (long long)i->patch, o->image_weights);
    mvd_info("  video teacher: ViT dim %lld depth %lld heads %lld tubelet %lldx%lldx%lld (%s)", (long long)v->dim,
             (long long)v->depth, (long long)v->heads, (long long)v->tubelet, (long long)v->patch,
             (long long)v->patch, o->video_weights);
    mvd_info("  targets: %lld tokens, norm_feature %s, stored %s, zstd level %d, <= %d clips per shard, %d threads",
             (long long)run->tokens, o->norm_feature ? "on" : "off", o->dtype, o->zstd_level, o->shard_size,
             omp_get_max_threads());
}

static void free_run(extract_run *run) {
    teacher_free(run->image);
    teacher_free(run->video);
    datalist_free(&run->list);
    manifest_free(&run->manifest);
    free(run->frames);
    free(run->image_frames);
    free(run->video_input);
    free(run->image_input);
    free(run->image_targets);
    free(run->video_targets);
    free(run->specs);
    if (run->opt.random_teachers) {
        free((char *)run->opt.image_weights);
        free((char *)run->opt.video_weights);
    }
}

int main(int argc, char **argv) {
    cli_prefer_passive_openmp(argv);
    cli_program = "mvd-extract";
    extract_run run;
    memset(&run, 0, sizeof run);
    parse_options(argc, argv, &run.opt);
    k_set_threads(run.opt.threads);
    video_quiet_ffmpeg_log();
    mvd_err err;
    double t0 = now_seconds();
    cache_meta_init(&run.meta);
    int created_out_dir = !file_exists(run.opt.out_dir);
    int rc = read_inputs(&run, &err);
    if (rc == 0) rc = load_teachers(&run, &err);
    if (rc == 0) rc = build_meta(&run, &err);
    if (rc == 0) rc = open_manifest(&run, &err);
    if (rc != 0) discard_partial_output(&run, created_out_dir);
    if (rc == 0 && run.opt.random_teachers) rc = keep_random_teachers(&run.opt, &err);
    if (rc == 0) {
        alloc_buffers(&run);
        echo_config(&run);
        rc = run_extraction(&run, &err);
    }
    if (rc != 0) {
        fprintf(stderr, "mvd-extract: error: %s\n", err.msg);
        free_run(&run);
        return 1;
    }
    double secs = now_seconds() - t0;
    printf("mvd-extract: %lld new clips in %.1f s (%.2f clips/s), %lld already cached; %zu video(s) skipped%s; "
           "cache %s (%lld clips)\n",
           (long long)run.clips_done, secs, secs > 0 ? (double)run.clips_done / secs : 0.0,
           (long long)run.clips_cached, run.manifest.num_failures,
           run.manifest.num_failures ? " (reasons in manifest.json)" : "", run.opt.out_dir,
           (long long)manifest_total_clips(&run.manifest));
    int status = run.manifest.num_failures > 0 ? 2 : 0;
    free_run(&run);
    return status;
}
