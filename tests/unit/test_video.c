/* test_video.c: decoding of the sample videos against the ffmpeg command-line tools as an independent reference.
 *
 * Frame counts must equal `ffprobe -count_frames` (tree.avi's header claims 444 frames; 68 decode), and
 * decoded RGB frames must hash like the same frames written by `ffmpeg ... -pix_fmt rgb24` with the same
 * bit-exact flags. Rotation metadata, crops, repeated indices, determinism and bad inputs (missing, empty,
 * truncated, audio-only, not media) are covered too. Needs `bash scripts/fetch-sample-data.sh` first: a
 * missing sample video is a failure. */
#include <string.h>
#include <sys/stat.h>

#include "test.h"
#include "test_files.h"
#include "video.h"

#define DATA_DIR "examples/data"
#define OUT_DIR "build/test-out"
#define CLI_SWS_FLAGS "bicubic+bitexact+accurate_rnd+full_chroma_int+full_chroma_inp"

static const char *sample_videos[] = {"Megamind.avi", "vtest.avi", "tree.avi", "cup.mp4"};
#define NUM_SAMPLES (int)(sizeof sample_videos / sizeof *sample_videos)

static void sample_path(const char *name, char *path, size_t n) { snprintf(path, n, DATA_DIR "/%s", name); }

/* Runs a shell command and returns everything it printed on stdout (NUL-terminated; *len without the NUL). */
static uint8_t *run_capture(const char *cmd, size_t *len) {
    FILE *p = popen(cmd, "r");
    if (!p) return NULL;
    size_t cap = 1 << 20, n = 0;
    uint8_t *buf = xmalloc(cap + 1);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n, p)) > 0) {
        n += got;
        if (n == cap) {
            cap *= 2;
            uint8_t *grown = realloc(buf, cap + 1);
            if (!grown) abort();
            buf = grown;
        }
    }
    int status = pclose(p);
    buf[n] = 0;
    *len = n;
    if (status != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

static int run_quiet(const char *cmd) { return system(cmd); }

static int64_t ffprobe_count(const char *path) {
    char cmd[1024];
    size_t n;
    snprintf(cmd, sizeof cmd,
             "ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames "
             "-of csv=p=0 '%s'",
             path);
    uint8_t *out = run_capture(cmd, &n);
    if (!out) return -1;
    long long v = -1;
    if (sscanf((char *)out, "%lld", &v) != 1) v = -1;
    free(out);
    return v;
}

/* The ffmpeg command line's RGB24 frames with the given indices (decoder output order), concatenated. */
static uint8_t *ffmpeg_frames(const char *path, const int64_t *idx, int n, size_t *len) {
    char select[512] = "", cmd[2048];
    for (int i = 0; i < n; i++) {
        size_t used = strlen(select);
        snprintf(select + used, sizeof select - used, "%seq(n\\,%lld)", i ? "+" : "", (long long)idx[i]);
    }
    snprintf(cmd, sizeof cmd,
             "ffmpeg -nostdin -v error -flags bitexact -i '%s' -vf \"select='%s'\" -fps_mode passthrough "
             "-frames:v %d -sws_flags %s -f rawvideo -pix_fmt rgb24 -",
             path, select, n, CLI_SWS_FLAGS);
    return run_capture(cmd, len);
}

static void test_frame_counts_match_ffprobe(void) {
    for (int v = 0; v < NUM_SAMPLES; v++) {
        char path[256];
        sample_path(sample_videos[v], path, sizeof path);
        video_info info;
        mvd_err err;
        REQUIRE(video_probe(path, &info, &err) == 0, "%s (run bash scripts/fetch-sample-data.sh)", err.msg);
        int64_t expected = ffprobe_count(path);
        CHECK(expected > 0, "ffprobe could not count %s", path);
        CHECK(info.num_frames == expected, "%s: %lld frames, ffprobe counts %lld", path, (long long)info.num_frames,
              (long long)expected);
        /* Timestamps that exist ascend (Megamind.avi's packed B-frames leave some frames without one). */
        int ascending = 1, missing = 0;
        int64_t prev = INT64_MIN;
        for (int64_t i = 0; i < info.num_frames; i++) {
            if (info.pts[i] == INT64_MIN) {
                missing++;
                continue;
            }
            if (info.pts[i] <= prev) ascending = 0;
            prev = info.pts[i];
        }
        CHECK(ascending, "%s: timestamps not strictly ascending", path);
        if (missing) test_report("%s: %d frames without a timestamp", sample_videos[v], missing);
        test_report("%-13s %4lld frames (ffprobe %lld) %dx%d %s %s tb %d/%d", sample_videos[v],
                    (long long)info.num_frames, (long long)expected, info.width, info.height, info.codec,
                    info.pix_fmt, info.time_base_num, info.time_base_den);
        if (strcmp(sample_videos[v], "tree.avi") == 0)
            CHECK(info.num_frames < 444, "tree.avi: the header's 444 frames must not be trusted");
        video_info_free(&info);
    }
}

/* Frames 0, 1, the middle one and the last, as RGB of the whole frame, compared with ffmpeg's. With
 * exact, the SHA-256 must match; otherwise (rotated videos: ffmpeg turns the YCbCr planes before converting,
 * we turn the RGB after, so chroma interpolation differs at a few pixels) at most 1% of the bytes may differ,
 * by at most max_diff. */
static void check_against_cli(const char *path, const video_info *info, int exact, int max_diff) {
    int64_t idx[4] = {0, 1, info->num_frames / 2, info->num_frames - 1};
    int n = info->num_frames >= 4 ? 4 : 1;
    crop_box full = {0, 0, info->width, info->height};
    size_t frame_bytes = (size_t)info->width * info->height * 3;
    uint8_t *mine = xmalloc(frame_bytes * n);
    mvd_err err;
    REQUIRE(video_read_frames(path, info, idx, n, full, mine, NULL, &err) == 0, "%s", err.msg);
    size_t len = 0;
    uint8_t *ref = ffmpeg_frames(path, idx, n, &len);
    CHECK(ref && len == frame_bytes * n, "%s: ffmpeg gave %zu bytes, expected %zu", path, len, frame_bytes * n);
    for (int i = 0; ref && len == frame_bytes * n && i < n; i++) {
        char a[65], b[65];
        sha256_hex(mine + i * frame_bytes, frame_bytes, a);
        sha256_hex(ref + i * frame_bytes, frame_bytes, b);
        size_t diff = 0;
        int worst = 0;
        for (size_t k = 0; k < frame_bytes; k++) {
            int d = abs((int)mine[i * frame_bytes + k] - (int)ref[i * frame_bytes + k]);
            diff += d != 0;
            if (d > worst) worst = d;
        }
        if (exact)
            CHECK(strcmp(a, b) == 0, "%s frame %lld: sha256 %.16s differs from ffmpeg's %.16s (%zu bytes, max %d)",
                  path, (long long)idx[i], a, b, diff, worst);
        else
            CHECK(diff * 100 <= frame_bytes && worst <= max_diff, "%s frame %lld: %zu bytes differ, max %d", path,
                  (long long)idx[i], diff, worst);
        if (i == n - 1 || diff)
            test_report("%s frame %lld: %zu of %zu bytes differ from ffmpeg (max %d)", path, (long long)idx[i], diff,
                        frame_bytes, worst);
    }
    free(ref);
    free(mine);
}

static void test_frames_match_ffmpeg_cli(void) {
    for (int v = 0; v < NUM_SAMPLES; v++) {
        char path[256];
        sample_path(sample_videos[v], path, sizeof path);
        video_info info;
        mvd_err err;
        REQUIRE(video_probe(path, &info, &err) == 0, "%s", err.msg);
        check_against_cli(path, &info, 1, 0);
        video_info_free(&info);
    }
}

/* Crops equal the same region of the full frame; repeats and any order are allowed; a second run gives the
 * same bytes; the returned timestamps are the probe's. */
static void test_crops_repeats_determinism(void) {
    char path[256];
    sample_path("cup.mp4", path, sizeof path);
    video_info info;
    mvd_err err;
    REQUIRE(video_probe(path, &info, &err) == 0, "%s", err.msg);
    int64_t idx[5] = {40, 3, 40, 200, 3};
    crop_box full = {0, 0, info.width, info.height}, crop = {101, 37, 223, 151};
    size_t fb = (size_t)info.width * info.height * 3, cb = (size_t)crop.w * crop.h * 3;
    uint8_t *whole = xmalloc(fb * 5), *a = xmalloc(cb * 5), *b = xmalloc(cb * 5);
    int64_t pts[5];
    REQUIRE(video_read_frames(path, &info, idx, 5, full, whole, NULL, &err) == 0, "%s", err.msg);
    REQUIRE(video_read_frames(path, &info, idx, 5, crop, a, pts, &err) == 0, "%s", err.msg);
    REQUIRE(video_read_frames(path, &info, idx, 5, crop, b, NULL, &err) == 0, "%s", err.msg);
    CHECK(memcmp(a, b, cb * 5) == 0, "two runs differ");
    CHECK(memcmp(a, a + 2 * cb, cb) == 0 && memcmp(a + cb, a + 4 * cb, cb) == 0, "repeated index differs");
    int same = 1;
    for (int i = 0; i < 5; i++)
        for (int y = 0; y < crop.h; y++)
            if (memcmp(a + i * cb + (size_t)y * crop.w * 3,
                       whole + i * fb + ((size_t)(crop.y + y) * info.width + crop.x) * 3, (size_t)crop.w * 3) != 0)
                same = 0;
    CHECK(same, "crop differs from the same region of the full frame");
    for (int i = 0; i < 5; i++) CHECK(pts[i] == info.pts[idx[i]], "pts of slot %d", i);
    CHECK(memcmp(a, a + cb, cb) != 0, "frames 40 and 3 should differ");
    free(whole);
    free(a);
    free(b);
    video_info_free(&info);
}

/* A crop hanging over the top-left edge (the reference's negative offsets) is black outside the frame. */
static void test_crop_outside_is_black(void) {
    char path[256];
    sample_path("tree.avi", path, sizeof path);
    video_info info;
    mvd_err err;
    REQUIRE(video_probe(path, &info, &err) == 0, "%s", err.msg);
    crop_box crop = {-2, -3, 20, 20}, inner = {0, 0, 18, 17};
    int64_t idx = 5;
    uint8_t a[20 * 20 * 3], b[18 * 17 * 3];
    REQUIRE(video_read_frames(path, &info, &idx, 1, crop, a, NULL, &err) == 0, "%s", err.msg);
    REQUIRE(video_read_frames(path, &info, &idx, 1, inner, b, NULL, &err) == 0, "%s", err.msg);
    int ok = 1;
    for (int y = 0; y < 20; y++)
        for (int x = 0; x < 20; x++) {
            const uint8_t *p = a + (y * 20 + x) * 3;
            if (y < 3 || x < 2) ok &= p[0] == 0 && p[1] == 0 && p[2] == 0;
            else ok &= memcmp(p, b + ((y - 3) * 18 + (x - 2)) * 3, 3) == 0;
        }
    CHECK(ok, "outside pixels not black or inside pixels misplaced");
    crop_box away = {info.width, 0, 10, 10};
    CHECK(video_read_frames(path, &info, &idx, 1, away, a, NULL, &err) != 0, "a crop outside the frame must fail");
    video_info_free(&info);
}

/* The clockwise turn ffmpeg's autorotation applies to a file, from ffprobe's display-matrix angle. */
static int ffprobe_clockwise(const char *path) {
    char cmd[1024];
    size_t n;
    snprintf(cmd, sizeof cmd, "ffprobe -v error -select_streams v:0 -show_entries stream_side_data=rotation "
                              "-of csv=p=0 '%s'", path);
    uint8_t *out = run_capture(cmd, &n);
    int r = 0;
    if (!out || sscanf((char *)out, "%d", &r) != 1) r = 0;
    free(out);
    return ((-r % 360) + 360) % 360;
}

/* The frame src (w x h RGB) turned clockwise by rot degrees, as an upright frame. */
static void rotate_rgb(const uint8_t *src, int w, int h, int rot, uint8_t *dst) {
    int uw = rot % 180 ? h : w, uh = rot % 180 ? w : h;
    for (int uy = 0; uy < uh; uy++)
        for (int ux = 0; ux < uw; ux++) {
            int sx = ux, sy = uy;
            if (rot == 90) sx = uy, sy = h - 1 - ux;
            if (rot == 180) sx = w - 1 - ux, sy = h - 1 - uy;
            if (rot == 270) sx = w - 1 - uy, sy = ux;
            memcpy(dst + ((size_t)uy * uw + ux) * 3, src + ((size_t)sy * w + sx) * 3, 3);
        }
}

/* Rotated copies of cup.mp4's first frames (display matrix written by the ffmpeg CLI): the rotation and the
 * upright size follow ffprobe's reading, the pixels are exactly the unrotated frame turned, and close to
 * ffmpeg's autorotated output. */
static void test_rotation(void) {
    static const int tags[3] = {90, 180, 270};
    mvd_err err;
    REQUIRE(mkdir_p(OUT_DIR, &err) == 0, "%s", err.msg);
    video_info plain;
    REQUIRE(video_probe(DATA_DIR "/cup.mp4", &plain, &err) == 0, "%s", err.msg);
    size_t fb = (size_t)plain.width * plain.height * 3;
    uint8_t *raw = xmalloc(fb), *turned = xmalloc(fb), *got = xmalloc(fb);
    int64_t idx = 7;
    crop_box full = {0, 0, plain.width, plain.height};
    REQUIRE(video_read_frames(DATA_DIR "/cup.mp4", &plain, &idx, 1, full, raw, NULL, &err) == 0, "%s", err.msg);
    for (int a = 0; a < 3; a++) {
        char path[256], cmd[1024];
        snprintf(path, sizeof path, OUT_DIR "/cup_rot%d.mp4", tags[a]);
        snprintf(cmd, sizeof cmd,
                 "ffmpeg -nostdin -v error -y -i " DATA_DIR "/cup.mp4 -frames:v 10 -c copy -metadata:s:v:0 rotate=%d '%s'",
                 tags[a], path);
        REQUIRE(run_quiet(cmd) == 0, "cannot make %s", path);
        video_info info;
        REQUIRE(video_probe(path, &info, &err) == 0, "%s", err.msg);
        int want = ffprobe_clockwise(path), swapped = want % 180 != 0;
        CHECK(want != 0, "%s: ffprobe sees no rotation", path);
        CHECK(info.rotation == want, "%s: rotation %d, ffprobe implies %d", path, info.rotation, want);
        CHECK(info.width == (swapped ? plain.height : plain.width) && info.height == (swapped ? plain.width : plain.height),
              "%s: upright %dx%d", path, info.width, info.height);
        crop_box upright = {0, 0, info.width, info.height};
        CHECK(video_read_frames(path, &info, &idx, 1, upright, got, NULL, &err) == 0, "%s", err.msg);
        rotate_rgb(raw, plain.width, plain.height, want, turned);
        CHECK(memcmp(got, turned, fb) == 0, "%s: not the unrotated frame turned by %d", path, want);
        check_against_cli(path, &info, 0, 8);
        video_info_free(&info);
    }
    free(raw);
    free(turned);
    free(got);
    video_info_free(&plain);
}

static void expect_failure(const char *path, const char *must_contain) {
    video_info info;
    mvd_err err = {{0}};
    CHECK(video_probe(path, &info, &err) != 0, "%s: probe should fail", path);
    CHECK(strstr(err.msg, path) != NULL, "the message should name the file: %s", err.msg);
    CHECK(strstr(err.msg, must_contain) != NULL, "the message should say '%s': %s", must_contain, err.msg);
    test_report("%s", err.msg);
}

static void test_bad_inputs(void) {
    mvd_err err;
    REQUIRE(mkdir_p(OUT_DIR, &err) == 0, "%s", err.msg);
    expect_failure(OUT_DIR "/no_such_video.mp4", "No such file");
    REQUIRE(write_file_atomic(OUT_DIR "/empty.mp4", "", 0, &err) == 0, "%s", err.msg);
    expect_failure(OUT_DIR "/empty.mp4", "empty file");
    const char *text = "this is not a video\n";
    REQUIRE(write_file_atomic(OUT_DIR "/text.mp4", text, strlen(text), &err) == 0, "%s", err.msg);
    expect_failure(OUT_DIR "/text.mp4", "not a readable media file");
    REQUIRE(run_quiet("ffmpeg -nostdin -v error -y -f lavfi -i sine=frequency=440:duration=1 -c:a aac "
                      OUT_DIR "/audio_only.m4a") == 0,
            "cannot make an audio-only file");
    expect_failure(OUT_DIR "/audio_only.m4a", "no video stream");
    /* An MP4 whose index (moov) was at the end and is cut off. */
    REQUIRE(run_quiet("ffmpeg -nostdin -v error -y -i " DATA_DIR "/cup.mp4 -frames:v 30 -c copy "
                      OUT_DIR "/moov_at_end.mp4") == 0,
            "cannot make an MP4 with its index at the end");
    REQUIRE(test_truncate_copy(OUT_DIR "/moov_at_end.mp4", OUT_DIR "/no_moov.mp4", 0.5) == 0, "cannot truncate");
    expect_failure(OUT_DIR "/no_moov.mp4", "not a readable media file");
    video_info info;
    CHECK(video_probe(OUT_DIR, &info, &err) != 0, "a directory is not a video");
}

/* Truncated copies: cup.mp4 keeps its index at the front, so the index promises 217 frames that are not all
 * there; Megamind.avi loses its index at the end. Probing must finish quickly, frames that survive must
 * decode, and a frame past the end must fail with the video and the index in the message. */
static void test_truncated(void) {
    const char *names[2] = {"cup.mp4", "Megamind.avi"};
    for (int v = 0; v < 2; v++) {
        char src[256], dst[256];
        sample_path(names[v], src, sizeof src);
        snprintf(dst, sizeof dst, OUT_DIR "/truncated_%s", names[v]);
        REQUIRE(test_truncate_copy(src, dst, 0.4) == 0, "cannot write %s", dst);
        video_info full, cut;
        mvd_err err = {{0}};
        REQUIRE(video_probe(src, &full, &err) == 0, "%s", err.msg);
        double t0 = now_seconds();
        int rc = video_probe(dst, &cut, &err);
        double dt = now_seconds() - t0;
        CHECK(dt < 20, "%s: probe took %.1f s", dst, dt);
        REQUIRE(rc == 0, "%s: %s", dst, err.msg);
        CHECK(cut.num_frames > 0 && cut.num_frames < full.num_frames, "%s: %lld of %lld frames survive", dst,
              (long long)cut.num_frames, (long long)full.num_frames);
        test_report("%s: %lld of %lld frames survive (probe %.2f s)", dst, (long long)cut.num_frames,
                    (long long)full.num_frames, dt);
        uint8_t px[8 * 8 * 3];
        crop_box c = {0, 0, 8, 8};
        int64_t first = 0, last_ok = cut.num_frames - 1;
        CHECK(video_read_frames(dst, &cut, &first, 1, c, px, NULL, &err) == 0, "%s", err.msg);
        CHECK(video_read_frames(dst, &cut, &last_ok, 1, c, px, NULL, &err) == 0, "%s", err.msg);
        /* The full file's metadata promises more frames than the truncated file holds. */
        int64_t past = full.num_frames - 1;
        err.msg[0] = 0;
        CHECK(video_read_frames(dst, &full, &past, 1, c, px, NULL, &err) != 0, "%s: frame %lld should fail", dst,
              (long long)past);
        char want[64];
        snprintf(want, sizeof want, "frame %lld", (long long)past);
        CHECK(strstr(err.msg, dst) && strstr(err.msg, want), "message should name video and index: %s", err.msg);
        test_report("%s", err.msg);
        video_info_free(&full);
        video_info_free(&cut);
    }
}

static void test_index_out_of_range(void) {
    char path[256];
    sample_path("tree.avi", path, sizeof path);
    video_info info;
    mvd_err err;
    REQUIRE(video_probe(path, &info, &err) == 0, "%s", err.msg);
    int64_t idx[2] = {0, info.num_frames};
    uint8_t px[4 * 4 * 3 * 2];
    crop_box c = {0, 0, 4, 4};
    CHECK(video_read_frames(path, &info, idx, 2, c, px, NULL, &err) != 0, "index past the end must fail");
    CHECK(strstr(err.msg, "frame 68") != NULL, "message names the index: %s", err.msg);
    video_info_free(&info);
}

static void test_version_strings(void) {
    CHECK(video_ffmpeg_version() && strlen(video_ffmpeg_version()) > 0, "empty FFmpeg version");
    test_report("FFmpeg %s; %s", video_ffmpeg_version(), video_conversion_desc());
}

int main(void) {
    video_quiet_ffmpeg_log();
    RUN(test_frame_counts_match_ffprobe);
    RUN(test_frames_match_ffmpeg_cli);
    RUN(test_crops_repeats_determinism);
    RUN(test_crop_outside_is_black);
    RUN(test_rotation);
    RUN(test_bad_inputs);
    RUN(test_truncated);
    RUN(test_index_out_of_range);
    RUN(test_version_strings);
    return test_summary();
}
