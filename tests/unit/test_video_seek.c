/* test_video_seek.c: reading frames by their timestamps, seeking, without a probe (video_read_frames_by_pts).
 *
 * The reference is video_read_frames, which decodes from the start: on every sample video, for clips drawn at
 * random (stride 4 and 2) and for the first frames, the last frames, repeated frames in any order and odd
 * crops, the seeking read must give the same bytes. Besides: the fallback answers (a frame without a
 * timestamp, as Megamind.avi's last frame, a timestamp or index that is not the stream's, another time base),
 * truncated copies, bad inputs, rotation, and H.264 with B-frames and open GOPs (made here with libx264), where
 * a seek can land after the wanted frame. Needs `bash scripts/fetch-sample-data.sh` first. */
#include <string.h>
#include <sys/stat.h>

#include "test.h"
#include "test_files.h"
#include "video.h"

#define DATA_DIR "examples/data"
#define OUT_DIR "build/test-out"
#define CLIP_T 16

static const char *sample_videos[] = {"Megamind.avi", "vtest.avi", "tree.avi", "cup.mp4"};
#define NUM_SAMPLES (int)(sizeof sample_videos / sizeof *sample_videos)

/* A fixed generator, so every run checks the same clips. */
static uint64_t lcg_state = 0x9e3779b97f4a7c15ULL;
static int64_t draw_below(int64_t n) {
    lcg_state = lcg_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (int64_t)((lcg_state >> 33) % (uint64_t)n);
}

/* Totals over all compared clips, for the report. */
static struct {
    int clips, seeked, fallbacks, repassed; /* repassed: delivered by a second pass (earlier keyframe, or start) */
    double by_pts_s, sequential_s;
} totals;

static int has_missing_pts(const video_info *info, const int64_t *idx, int n) {
    for (int i = 0; i < n; i++)
        if (info->pts[idx[i]] == INT64_MIN) return 1;
    return 0;
}

static video_pts_request make_request(const video_info *info, const int64_t *idx, int64_t *pts, int n,
                                      crop_box crop, int flags) {
    for (int i = 0; i < n; i++) pts[i] = info->pts[idx[i]];
    return (video_pts_request){.pts = pts, .indices = idx, .n = n, .time_base_num = info->time_base_num,
                               .time_base_den = info->time_base_den, .crop = crop, .flags = flags};
}

/* Reads frames idx by timestamp and compares them with ref, video_read_frames' bytes for the same request. A
 * frame without a timestamp must give VIDEO_PTS_FALLBACK instead. Returns the by-timestamp result. */
static int check_by_pts(const char *path, const video_info *info, const int64_t *idx, int n, crop_box crop,
                        int flags, const uint8_t *ref, video_pts_stats *stats) {
    size_t bytes = (size_t)n * crop.w * crop.h * 3;
    uint8_t *fast = xmalloc(bytes);
    int64_t pts[CLIP_T];
    video_pts_request rq = make_request(info, idx, pts, n, crop, flags);
    mvd_err err = {{0}};
    double t0 = now_seconds();
    int rc = video_read_frames_by_pts(path, &rq, fast, stats, &err);
    totals.by_pts_s += now_seconds() - t0;
    if (has_missing_pts(info, idx, n)) {
        CHECK(rc == VIDEO_PTS_FALLBACK, "%s: a frame without a timestamp must fall back (rc %d)", path, rc);
        CHECK(strstr(err.msg, path) && strstr(err.msg, "no recorded timestamp"), "message: %s", err.msg);
        totals.fallbacks++;
    } else {
        CHECK(rc == 0, "%s: frames %lld..%lld: rc %d: %s", path, (long long)idx[0], (long long)idx[n - 1], rc, err.msg);
    }
    if (rc == 0) {
        CHECK(memcmp(fast, ref, bytes) == 0, "%s: frames %lld..%lld (stride %lld, crop %dx%d at %d,%d) differ from "
              "video_read_frames (seeked %d, started at pts %lld)", path, (long long)idx[0], (long long)idx[n - 1],
              (long long)(n > 1 ? idx[1] - idx[0] : 0), crop.w, crop.h, crop.x, crop.y, stats->seeked,
              (long long)stats->start_pts);
        totals.clips++;
        totals.seeked += stats->seeked;
        totals.repassed += stats->passes > 1;
    }
    free(fast);
    return rc;
}

/* video_read_frames' bytes for the request (the reference), timed. */
static uint8_t *sequential_read(const char *path, const video_info *info, const int64_t *idx, int n, crop_box crop) {
    uint8_t *ref = xmalloc((size_t)n * crop.w * crop.h * 3);
    mvd_err err = {{0}};
    double t0 = now_seconds();
    CHECK(video_read_frames(path, info, idx, n, crop, ref, NULL, &err) == 0, "%s", err.msg);
    totals.sequential_s += now_seconds() - t0;
    return ref;
}

static int compare_read(const char *path, const video_info *info, const int64_t *idx, int n, crop_box crop,
                        int flags, video_pts_stats *stats) {
    uint8_t *ref = sequential_read(path, info, idx, n, crop);
    int rc = check_by_pts(path, info, idx, n, crop, flags, ref, stats);
    free(ref);
    return rc;
}

/* A crop of random size (a quarter to all of the short side) and place, sometimes hanging over an edge. */
static crop_box random_crop(const video_info *info) {
    int side = info->width < info->height ? info->width : info->height;
    int w = side / 4 + (int)draw_below(side - side / 4 + 1), h = side / 4 + (int)draw_below(side - side / 4 + 1);
    int x = (int)draw_below(info->width - w + 1) - 2, y = (int)draw_below(info->height - h + 1);
    return (crop_box){x, y, w, h};
}

/* CLIP_T frames from start at stride, held at the last frame (repeats near the end). */
static void clip_indices(const video_info *info, int64_t start, int stride, int64_t *idx) {
    for (int i = 0; i < CLIP_T; i++) {
        idx[i] = start + (int64_t)i * stride;
        if (idx[i] >= info->num_frames) idx[i] = info->num_frames - 1;
    }
}

/* Random clips at stride 4 and 2 (one crop, so one sequential read is the reference for all of them). */
static void check_random_clips(const char *path, const video_info *info, int clips, int frames) {
    int64_t *idx = xmalloc((size_t)clips * frames * sizeof *idx);
    for (int c = 0; c < clips; c++) {
        int64_t start = draw_below(info->num_frames);
        for (int i = 0; i < frames; i++) {
            int64_t f = start + (int64_t)i * (c % 2 ? 2 : 4);
            idx[c * frames + i] = f < info->num_frames ? f : info->num_frames - 1; /* held: repeats */
        }
    }
    crop_box crop = random_crop(info);
    uint8_t *ref = sequential_read(path, info, idx, clips * frames, crop);
    size_t clip_bytes = (size_t)frames * crop.w * crop.h * 3;
    video_pts_stats st;
    for (int c = 0; c < clips; c++) check_by_pts(path, info, idx + c * frames, frames, crop, 0, ref + c * clip_bytes, &st);
    free(ref);
    free(idx);
}

/* Random clips, the first clip (with and without seeking), one ending on the last frame, and repeats in a
 * shuffled order. */
static void check_video_clips(const char *path, int random_clips) {
    video_info info;
    mvd_err err;
    REQUIRE(video_probe(path, &info, &err) == 0, "%s (run bash scripts/fetch-sample-data.sh)", err.msg);
    int before = totals.clips, seeked = totals.seeked, repassed = totals.repassed;
    check_random_clips(path, &info, random_clips, 8);
    int64_t idx[CLIP_T];
    video_pts_stats st;
    clip_indices(&info, 0, 4, idx);
    crop_box full = {0, 0, info.width, info.height};
    uint8_t *ref = sequential_read(path, &info, idx, CLIP_T, full);
    check_by_pts(path, &info, idx, CLIP_T, full, 0, ref, &st);
    check_by_pts(path, &info, idx, CLIP_T, full, VIDEO_PTS_NO_SEEK, ref, &st);
    free(ref);
    CHECK(st.seeked == 0 && st.passes == 1, "%s: VIDEO_PTS_NO_SEEK seeked", path);
    int64_t last_start = info.num_frames - 1 - 15 * 2;
    clip_indices(&info, last_start > 0 ? last_start : 0, 2, idx);
    compare_read(path, &info, idx, CLIP_T, random_crop(&info), 0, &st);
    /* Repeats in any order. */
    int64_t mid = info.num_frames / 2, shuffled[6] = {mid + 3, mid, mid + 3, mid + 1, mid, mid + 1};
    compare_read(path, &info, shuffled, 6, random_crop(&info), 0, &st);
    test_report("%-13s %d clips equal to video_read_frames, %d of them read after a seek, %d by a second pass", path,
                totals.clips - before, totals.seeked - seeked, totals.repassed - repassed);
    video_info_free(&info);
}

static void test_samples_equal_sequential(void) {
    for (int v = 0; v < NUM_SAMPLES; v++) {
        char path[256];
        snprintf(path, sizeof path, DATA_DIR "/%s", sample_videos[v]);
        check_video_clips(path, 4);
    }
    test_report("%d clips: by timestamp %.0f ms in all, video_read_frames %.0f ms; %d fell back (no timestamp)",
                totals.clips, totals.by_pts_s * 1e3, totals.sequential_s * 1e3, totals.fallbacks);
    CHECK(totals.fallbacks > 0, "Megamind.avi's last frame has no timestamp: some clip should fall back");
}

/* A late clip of vtest.avi (keyframes every 250 frames) is read after one seek, decoding from the keyframe at
 * 500 to frame 780 only. Frame i's timestamp is i in vtest.avi's 1/10 time base (test_samples_equal_sequential
 * compares such clips with video_read_frames; this one checks the work done, so it needs no probe). */
static void test_seek_decodes_little(void) {
    const char *path = DATA_DIR "/vtest.avi";
    int64_t idx[CLIP_T];
    for (int i = 0; i < CLIP_T; i++) idx[i] = 720 + 4 * i;
    crop_box crop = {100, 50, 400, 400};
    video_pts_request rq = {.pts = idx, .indices = idx, .n = CLIP_T, .time_base_num = 1, .time_base_den = 10,
                            .crop = crop};
    uint8_t *out = xmalloc((size_t)CLIP_T * crop.w * crop.h * 3);
    video_pts_stats st;
    mvd_err err = {{0}};
    REQUIRE(video_read_frames_by_pts(path, &rq, out, &st, &err) == 0, "%s", err.msg);
    CHECK(st.seeked && st.passes == 1 && st.start_pts == 500, "%s: not read after one seek to the keyframe at 500 "
          "(passes %d, start %lld)", path, st.passes, (long long)st.start_pts);
    CHECK(st.decoded == idx[CLIP_T - 1] + 1 - 500, "%s: %lld frames decoded for frames 500..780", path,
          (long long)st.decoded);
    test_report("%s frames %lld..%lld: %lld frames decoded from pts %lld", path, (long long)idx[0],
                (long long)idx[CLIP_T - 1], (long long)st.decoded, (long long)st.start_pts);
    free(out);
}

/* Requests the timestamps cannot serve: each answers VIDEO_PTS_FALLBACK with a message naming the video. */
static void expect_fallback(const char *path, const video_pts_request *rq, const char *must_contain) {
    uint8_t *out = xmalloc((size_t)rq->n * rq->crop.w * rq->crop.h * 3);
    mvd_err err = {{0}};
    int rc = video_read_frames_by_pts(path, rq, out, NULL, &err);
    CHECK(rc == VIDEO_PTS_FALLBACK, "%s: expected a fallback for '%s', got %d (%s)", path, must_contain, rc, err.msg);
    CHECK(strstr(err.msg, path) && strstr(err.msg, must_contain), "message should name %s and say '%s': %s", path,
          must_contain, err.msg);
    test_report("%s", err.msg);
    free(out);
}

static void test_fallback_answers(void) {
    const char *path = DATA_DIR "/cup.mp4";
    video_info info;
    mvd_err err;
    REQUIRE(video_probe(path, &info, &err) == 0, "%s", err.msg);
    int64_t idx[CLIP_T], pts[CLIP_T];
    clip_indices(&info, 100, 4, idx);
    crop_box crop = {10, 10, 64, 48};
    video_pts_request rq = make_request(&info, idx, pts, CLIP_T, crop, 0);
    pts[7] += 1; /* between two frames (1000 units apart) */
    expect_fallback(path, &rq, "no frame has timestamp");
    pts[7] -= 1;
    rq.time_base_den = 25;
    expect_fallback(path, &rq, "time base");
    rq.time_base_den = info.time_base_den;
    int64_t moved[CLIP_T]; /* one frame's index moved: the spacing differs from the stream's */
    memcpy(moved, idx, sizeof moved);
    moved[9] += 1;
    rq.indices = moved;
    expect_fallback(path, &rq, "frames added or removed");
    for (int i = 0; i < CLIP_T; i++) moved[i] = idx[i] + 1; /* all shifted: only a read from the start sees it */
    rq.flags = VIDEO_PTS_NO_SEEK;
    expect_fallback(path, &rq, "frames added or removed");
    rq.flags = 0;
    moved[3] = moved[4]; /* indices out of order with the timestamps */
    expect_fallback(path, &rq, "out of order");
    video_info_free(&info);
}

/* Megamind.avi's last frame has no timestamp: the by-timestamp read refuses it and the probe path reads it,
 * as the loader does. clip_decode_by_pts gives the same answer from a spec. */
static void test_missing_pts_fallback(void) {
    const char *path = DATA_DIR "/Megamind.avi";
    video_info info;
    mvd_err err = {{0}};
    REQUIRE(video_probe(path, &info, &err) == 0, "%s", err.msg);
    REQUIRE(info.pts[info.num_frames - 1] == INT64_MIN, "Megamind.avi's last frame was expected without timestamp");
    clip_spec spec = {.num_frames = 4, .crop = {0, 0, 32, 32}, .time_base_num = info.time_base_num,
                      .time_base_den = info.time_base_den};
    for (int i = 0; i < 4; i++) {
        spec.frame_index[i] = info.num_frames - 7 + 2 * i;
        spec.pts[i] = info.pts[spec.frame_index[i]];
    }
    uint8_t fast[4 * 32 * 32 * 3], ref[4 * 32 * 32 * 3];
    CHECK(clip_decode_by_pts(path, &spec, fast, &err) == VIDEO_PTS_FALLBACK, "expected a fallback: %s", err.msg);
    CHECK(strstr(err.msg, path) && strstr(err.msg, "index 269"), "message: %s", err.msg);
    clip_spec probed = spec;
    CHECK(clip_decode(path, &info, &probed, ref, &err) == 0, "the probe path: %s", err.msg);
    spec.frame_index[3] = info.num_frames - 2; /* without the last frame the timestamps serve */
    spec.pts[3] = info.pts[spec.frame_index[3]];
    probed = spec;
    CHECK(clip_decode_by_pts(path, &spec, fast, &err) == 0, "%s", err.msg);
    CHECK(clip_decode(path, &info, &probed, ref, &err) == 0, "%s", err.msg);
    CHECK(memcmp(fast, ref, sizeof fast) == 0, "clip_decode_by_pts differs from clip_decode");
    video_info_free(&info);
}

/* Truncated copies: a late clip falls back, and the probe path then fails naming the video and the frame;
 * an early clip still reads, equal to video_read_frames on the copy. */
static void test_truncated(void) {
    const char *names[2] = {"cup.mp4", "Megamind.avi"};
    mvd_err err = {{0}};
    REQUIRE(mkdir_p(OUT_DIR, &err) == 0, "%s", err.msg);
    for (int v = 0; v < 2; v++) {
        char src[256], dst[256];
        snprintf(src, sizeof src, DATA_DIR "/%s", names[v]);
        snprintf(dst, sizeof dst, OUT_DIR "/seek_truncated_%s", names[v]);
        REQUIRE(test_truncate_copy(src, dst, 0.4) == 0, "cannot write %s", dst);
        video_info full, cut;
        REQUIRE(video_probe(src, &full, &err) == 0 && video_probe(dst, &cut, &err) == 0, "%s", err.msg);
        int64_t idx[CLIP_T], pts[CLIP_T];
        clip_indices(&full, full.num_frames - 70, 4, idx);
        crop_box crop = {0, 0, 48, 48};
        video_pts_request rq = make_request(&full, idx, pts, CLIP_T - 2, crop, 0); /* not the last frame */
        expect_fallback(dst, &rq, "no frame has timestamp");
        uint8_t *px = xmalloc((size_t)CLIP_T * 48 * 48 * 3);
        err.msg[0] = 0;
        CHECK(video_read_frames(dst, &full, idx, CLIP_T - 2, crop, px, NULL, &err) != 0, "%s: should fail", dst);
        CHECK(strstr(err.msg, dst) && strstr(err.msg, "cannot be decoded"), "probe path message: %s", err.msg);
        free(px);
        video_pts_stats st;
        clip_indices(&cut, cut.num_frames - 1 - 15 * 2, 2, idx);
        compare_read(dst, &cut, idx, CLIP_T, crop, 0, &st);
        video_info_free(&full);
        video_info_free(&cut);
    }
}

static void test_bad_inputs(void) {
    mvd_err err = {{0}};
    int64_t pts[1] = {0};
    uint8_t px[8 * 8 * 3];
    video_pts_request rq = {.pts = pts, .n = 1, .crop = {0, 0, 8, 8}};
    const char *missing = OUT_DIR "/no_such_video.mp4";
    CHECK(video_read_frames_by_pts(missing, &rq, px, NULL, &err) == -1, "a missing file is an error");
    CHECK(strstr(err.msg, missing) && strstr(err.msg, "No such file"), "message: %s", err.msg);
    rq.crop = (crop_box){5000, 0, 8, 8};
    CHECK(video_read_frames_by_pts(DATA_DIR "/tree.avi", &rq, px, NULL, &err) == -1, "a crop off the frame");
    CHECK(strstr(err.msg, "outside"), "message: %s", err.msg);
    rq.n = 0;
    CHECK(video_read_frames_by_pts(DATA_DIR "/tree.avi", &rq, px, NULL, &err) == -1, "no frames requested");
}

/* Makes an encoded copy of cup.mp4 with the ffmpeg command line; returns 0 on success. */
static int make_variant(const char *args, const char *dst) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "ffmpeg -nostdin -v error -y -i " DATA_DIR "/cup.mp4 %s '%s'", args, dst);
    return system(cmd);
}

/* H.264 with B-frames and open GOPs (a keyframe's leading B-frames reference the previous GOP and present
 * before it), in MP4 (seeks by dts) and Matroska (seeks by pts); and a rotated copy. */
static void test_bframes_open_gop_rotation(void) {
    static const struct { const char *file, *args; } variants[] = {
        {"seek_bframes_open_gop.mp4",
         "-an -vf scale=320:240 -c:v libx264 -preset veryfast -bf 3 -g 24 -x264-params open-gop=1:scenecut=0"},
        {"seek_bframes_open_gop.mkv",
         "-an -vf scale=320:240 -c:v libx264 -preset veryfast -bf 3 -g 24 -x264-params open-gop=1:scenecut=0"},
        {"seek_bframes_closed_gop.mp4", "-an -vf scale=320:240 -c:v libx264 -preset veryfast -bf 2 -g 20"},
        {"seek_rot90.mp4", "-frames:v 60 -c copy -metadata:s:v:0 rotate=90"},
    };
    mvd_err err;
    REQUIRE(mkdir_p(OUT_DIR, &err) == 0, "%s", err.msg);
    for (size_t v = 0; v < sizeof variants / sizeof *variants; v++) {
        char path[256];
        snprintf(path, sizeof path, OUT_DIR "/%s", variants[v].file);
        REQUIRE(make_variant(variants[v].args, path) == 0, "cannot make %s", path);
        check_video_clips(path, 3);
    }
}

/* Every frame of a video as the first of a 2-frame clip: whatever keyframe the seek finds, and whether the
 * frame presents before it (an open GOP's leading B-frames), the bytes are video_read_frames'. One sequential
 * read of every frame (a small crop) is the reference. */
static void check_every_start(const char *path) {
    video_info info;
    mvd_err err;
    REQUIRE(video_probe(path, &info, &err) == 0, "%s", err.msg);
    int64_t n = info.num_frames, *all = xmalloc((size_t)n * sizeof *all);
    for (int64_t i = 0; i < n; i++) all[i] = i;
    crop_box crop = {info.width / 3, info.height / 3, 24, 16};
    size_t fb = (size_t)crop.w * crop.h * 3;
    uint8_t *ref = sequential_read(path, &info, all, (int)n, crop), pair_ref[2 * 24 * 16 * 3];
    int passes[4] = {0};
    for (int64_t s = 0; s + 1 < n; s++) {
        video_pts_stats st = {0};
        memcpy(pair_ref, ref + s * fb, 2 * fb);
        check_by_pts(path, &info, all + s, 2, crop, 0, pair_ref, &st);
        passes[st.passes < 3 ? st.passes : 3] += st.seeked;
    }
    test_report("%s: %lld starts; read after a seek: %d in one pass, %d after a second seek", path, (long long)n - 1,
                passes[1], passes[2]);
    free(ref);
    free(all);
    video_info_free(&info);
}

/* MP4 seeks by decoding timestamp, so a leading B-frame's seek lands on the keyframe after it and needs the
 * second try (Matroska seeks by presentation timestamp and does not). */
static void test_every_start_open_gop(void) { check_every_start(OUT_DIR "/seek_bframes_open_gop.mp4"); }

int main(void) {
    video_quiet_ffmpeg_log();
    RUN(test_samples_equal_sequential);
    RUN(test_seek_decodes_little);
    RUN(test_fallback_answers);
    RUN(test_missing_pts_fallback);
    RUN(test_truncated);
    RUN(test_bad_inputs);
    RUN(test_bframes_open_gop_rotation);
    RUN(test_every_start_open_gop);
    return test_summary();
}
