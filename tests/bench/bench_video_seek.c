/* bench_video_seek.c: what loading one cached clip costs mvd-train, before and after reading by timestamp.
 *
 *   build/bench/bench_video_seek [CLIPS_PER_VIDEO]      (after `make bench` or `make build/bench/bench_video_seek`)
 *
 * Clips are drawn as mvd-extract draws them (clip_sample: 16 frames at stride 4, multi-scale crop, 224 px), on
 * the sample videos. Each is loaded as load_pixels in train/loader.c does it, decode + PIL resize + SHA-256:
 *   before  video_probe (the loader's probe cache misses for a large dataset in random order) + clip_decode
 *   hit     clip_decode alone (a probe-cache hit, the best case before)
 *   after   clip_decode_by_pts (seeking, no probe), or the probe path when it answers VIDEO_PTS_FALLBACK
 * The pixels of every path must hash the same. Times are single-threaded wall-clock milliseconds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clip.h"
#include "video.h"

#define DATA_DIR "examples/data"

typedef struct {
    double before, hit, after;
    int fallbacks;
} clip_times;

/* Resize to the student's input and hash, as the loader does after decoding. */
static void resize_hash(const clip_spec *spec, const uint8_t *crops, int size, uint8_t *frames, char sha[65]) {
    mvd_err err;
    if (clip_resize(spec, crops, size, frames, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    clip_pixel_sha256(frames, spec->num_frames, size, sha);
}

static void die(const char *msg) {
    fprintf(stderr, "bench_video_seek: %s\n", msg);
    exit(1);
}

/* Times the three ways of loading one clip; spec has its pts and time base (filled by clip_decode). */
static clip_times time_clip(const char *path, const clip_spec *spec, int size) {
    clip_times t = {0};
    mvd_err err;
    uint8_t *crops = xmalloc(clip_crop_bytes(spec)), *frames = xmalloc((size_t)spec->num_frames * size * size * 3);
    char sha_before[65], sha_after[65];
    clip_spec s = *spec;
    double t0 = now_seconds();
    video_info info;
    if (video_probe(path, &info, &err) != 0 || clip_decode(path, &info, &s, crops, &err) != 0) die(err.msg);
    resize_hash(&s, crops, size, frames, sha_before);
    double t1 = now_seconds();
    if (clip_decode(path, &info, &s, crops, &err) != 0) die(err.msg);
    resize_hash(&s, crops, size, frames, sha_after);
    double t2 = now_seconds();
    int rc = clip_decode_by_pts(path, spec, crops, &err);
    if (rc < 0) die(err.msg);
    if (rc == VIDEO_PTS_FALLBACK) {
        video_info again; /* the loader's fallback: probe (its cache misses) and read by index */
        t.fallbacks = 1;
        if (video_probe(path, &again, &err) != 0 || clip_decode(path, &again, &s, crops, &err) != 0) die(err.msg);
        video_info_free(&again);
    }
    resize_hash(spec, crops, size, frames, sha_after);
    double t3 = now_seconds();
    if (strcmp(sha_before, sha_after) != 0) die("the by-timestamp pixels differ from the probe path's");
    t.before = (t1 - t0) * 1e3, t.hit = (t2 - t1) * 1e3, t.after = (t3 - t2) * 1e3;
    video_info_free(&info);
    free(crops);
    free(frames);
    return t;
}

/* A spec for frames start, start + 4, ... with a centre crop, timestamps filled from a probe. */
static clip_spec spec_at(const char *path, const video_info *info, int64_t start) {
    clip_spec s = {.num_frames = 16};
    clip_frame_indices(start, 16, 4, info->num_frames, s.frame_index);
    int side = info->width < info->height ? info->width : info->height;
    s.crop = (crop_box){(info->width - side) / 2, (info->height - side) / 2, side, side};
    uint8_t *crops = xmalloc(clip_crop_bytes(&s));
    mvd_err err;
    if (clip_decode(path, info, &s, crops, &err) != 0) die(err.msg);
    free(crops);
    return s;
}

static void bench_video(const char *name, int clips, const clip_params *p) {
    char path[256];
    snprintf(path, sizeof path, DATA_DIR "/%s", name);
    video_info info;
    mvd_err err;
    if (video_probe(path, &info, &err) != 0) die(err.msg);
    clip_times sum = {0};
    for (int view = 0; view < clips; view++) {
        clip_spec s;
        if (clip_sample(p, 0, view, info.num_frames, info.width, info.height, &s, &err) != 0) die(err.msg);
        uint8_t *crops = xmalloc(clip_crop_bytes(&s));
        if (clip_decode(path, &info, &s, crops, &err) != 0) die(err.msg); /* fills pts, as extraction does */
        free(crops);
        clip_times t = time_clip(path, &s, p->input_size);
        sum.before += t.before, sum.hit += t.hit, sum.after += t.after, sum.fallbacks += t.fallbacks;
    }
    printf("| %-13s | %6lld | %3d random clips  | %11.1f | %14.1f | %10.1f | %7.1fx | %9d |\n", name,
           (long long)info.num_frames, clips, sum.before / clips, sum.hit / clips, sum.after / clips,
           sum.before / sum.after, sum.fallbacks);
    if (strcmp(name, "vtest.avi") == 0) {
        clip_spec late = spec_at(path, &info, info.num_frames - 1 - 15 * 4 - 2);
        clip_times t = time_clip(path, &late, p->input_size);
        printf("| %-13s | %6lld | frames %4lld..%-4lld | %11.1f | %14.1f | %10.1f | %7.1fx | %9d |\n", name,
               (long long)info.num_frames, (long long)late.frame_index[0], (long long)late.frame_index[15], t.before,
               t.hit, t.after, t.before / t.after, t.fallbacks);
    }
    video_info_free(&info);
}

int main(int argc, char **argv) {
    int clips = argc > 1 ? atoi(argv[1]) : 8;
    if (clips < 1) die("CLIPS_PER_VIDEO must be positive");
    video_quiet_ffmpeg_log();
    clip_params p = {.num_frames = 16, .frame_stride = 4, .input_size = 224, .crop = CROP_MULTISCALE, .seed = 1};
    static const char *videos[] = {"Megamind.avi", "vtest.avi", "tree.avi", "cup.mp4"};
    printf("| video         | frames | clips             | before (ms) | probe hit (ms) | after (ms) | speed-up | fell back |\n");
    printf("|---------------|--------|-------------------|-------------|----------------|------------|----------|-----------|\n");
    for (size_t v = 0; v < sizeof videos / sizeof *videos; v++) bench_video(videos[v], clips, &p);
    return 0;
}
