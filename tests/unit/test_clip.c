/* test_clip.c: clip sampling (indices, repeats, crops, seeding) and the spec -> pixels path.
 *
 * Writes build/test-out/clip/formulas.txt (the C formulas' answers on a grid of inputs) and the pixels of one
 * decoded clip (resized frames, normalised inputs, SHA-256) for tests/py/test_preprocess.py, which checks them
 * against tests/reference/formulas.py, Pillow and torch. */
#include <string.h>

#include "clip.h"
#include "mask.h"
#include "test.h"
#include "test_files.h"
#include "video.h"

#define OUT_DIR "build/test-out/clip"

static clip_params default_params(void) {
    return (clip_params){.num_frames = 16, .frame_stride = 4, .input_size = 224, .crop = CROP_MULTISCALE, .seed = 42};
}

static void test_indices_long_video(void) {
    clip_params p = default_params();
    mvd_err err;
    int64_t lo = INT64_MAX, hi = -1;
    for (int view = 0; view < 3000; view++) {
        clip_spec s;
        REQUIRE(clip_sample(&p, 0, view, 100, 640, 480, &s, &err) == 0, "%s", err.msg);
        CHECK(s.repeated == 0, "no repeats in a long video");
        for (int k = 0; k < 16; k++) CHECK(s.frame_index[k] == s.start + 4 * k, "index %d", k);
        if (s.start < lo) lo = s.start;
        if (s.start > hi) hi = s.start;
    }
    /* Starts are uniform on [0, 100 - 64] = [0, 36]: 3000 draws reach both ends. */
    CHECK(lo == 0 && hi == 36, "start range [%lld, %lld], expected [0, 36]", (long long)lo, (long long)hi);
}

static void test_indices_short_video(void) {
    clip_params p = default_params();
    mvd_err err;
    clip_spec s;
    REQUIRE(clip_sample(&p, 3, 1, 30, 640, 480, &s, &err) == 0, "%s", err.msg);
    /* 30 frames: start 0, steps while f + 4 <= 28: 0..28 (8 frames), then 28 repeats 8 times. */
    CHECK(s.start == 0, "short video starts at 0");
    for (int k = 0; k < 16; k++) CHECK(s.frame_index[k] == (k < 8 ? 4 * k : 28), "index %d = %lld", k, (long long)s.frame_index[k]);
    CHECK(s.repeated == 8, "repeated %d", s.repeated);
    REQUIRE(clip_sample(&p, 3, 1, 1, 640, 480, &s, &err) == 0, "%s", err.msg);
    for (int k = 0; k < 16; k++) CHECK(s.frame_index[k] == 0, "one-frame video");
    CHECK(s.repeated == 15, "one-frame video repeats 15");
    /* The reference never steps onto the last frame: 61 frames stop at 56, not 60. */
    REQUIRE(clip_sample(&p, 3, 1, 61, 640, 480, &s, &err) == 0, "%s", err.msg);
    CHECK(s.frame_index[15] == 56 && s.repeated == 1, "61 frames: last %lld, repeated %d", (long long)s.frame_index[15],
          s.repeated);
}

static int crop_inside(crop_box c, int w, int h) { return c.x >= 0 && c.y >= 0 && c.x + c.w <= w && c.y + c.h <= h; }

static void test_crops_inside_and_varied(void) {
    static const int sizes[][2] = {{720, 528}, {768, 576}, {320, 240}, {640, 480}, {427, 240}, {240, 427},
                                   {1920, 1080}, {257, 255}, {100, 60}};
    clip_params p = default_params();
    mvd_err err;
    for (int s = 0; s < 9; s++) {
        int w = sizes[s][0], h = sizes[s][1], seen_pairs = 0, seen_offsets = 0;
        int pairs[CLIP_MAX_CROP_PAIRS][2];
        int npairs = clip_crop_candidates(w, h, 224, pairs);
        for (int view = 0; view < 2000; view++) {
            clip_spec c;
            REQUIRE(clip_sample(&p, s, view, 500, w, h, &c, &err) == 0, "%s", err.msg);
            CHECK(crop_inside(c.crop, w, h), "%dx%d: crop %dx%d at %d,%d outside", w, h, c.crop.w, c.crop.h, c.crop.x,
                  c.crop.y);
            for (int k = 0; k < npairs; k++)
                if (pairs[k][0] == c.crop.w && pairs[k][1] == c.crop.h) seen_pairs |= 1 << k;
            int offs[CLIP_NUM_CROP_OFFSETS][2];
            clip_crop_offsets(w, h, c.crop.w, c.crop.h, offs);
            int found = 0;
            for (int k = 0; k < CLIP_NUM_CROP_OFFSETS; k++)
                if (offs[k][0] == c.crop.x && offs[k][1] == c.crop.y) seen_offsets |= 1 << k, found = 1;
            CHECK(found, "%dx%d: offset %d,%d not a candidate", w, h, c.crop.x, c.crop.y);
        }
        CHECK(npairs == 10, "10 pairs, got %d", npairs);
        CHECK(seen_pairs == (1 << npairs) - 1, "%dx%d: not every crop size drawn (mask %x)", w, h, seen_pairs);
        CHECK(seen_offsets == (1 << CLIP_NUM_CROP_OFFSETS) - 1, "%dx%d: not every offset drawn", w, h);
    }
}

/* A short side 1-2 px below the input size snaps the crop up to 224, larger than the frame: the reference's
 * floor-divided steps are then negative and so are some offsets (PIL pads such a crop with black). */
static void test_snap_beyond_frame(void) {
    int pairs[CLIP_MAX_CROP_PAIRS][2], offs[CLIP_NUM_CROP_OFFSETS][2];
    int n = clip_crop_candidates(300, 222, 224, pairs);
    CHECK(n == 10 && pairs[0][0] == 224 && pairs[0][1] == 224, "222 snaps to 224: %d,%d", pairs[0][0], pairs[0][1]);
    clip_crop_offsets(300, 222, 224, 224, offs);
    CHECK(offs[2][1] == -4 && offs[1][0] == 76, "offsets (0, 4 * floor(-2/4)) = (0,-4): got %d; x %d", offs[2][1],
          offs[1][0]);
}

static void test_center_crop(void) {
    clip_params p = default_params();
    p.crop = CROP_CENTER;
    mvd_err err;
    clip_spec s;
    REQUIRE(clip_sample(&p, 0, 0, 100, 427, 240, &s, &err) == 0, "%s", err.msg);
    CHECK(s.crop.x == 93 && s.crop.y == 0 && s.crop.w == 240 && s.crop.h == 240, "center crop %d,%d %dx%d", s.crop.x,
          s.crop.y, s.crop.w, s.crop.h);
}

/* Same inputs, same spec; a spec does not depend on which clips were sampled before it. */
static void test_determinism_and_independence(void) {
    clip_params p = default_params();
    mvd_err err;
    clip_spec a[50], b[50];
    for (int i = 0; i < 50; i++) REQUIRE(clip_sample(&p, i / 5, i % 5, 400, 640, 480, &a[i], &err) == 0, "%s", err.msg);
    for (int i = 49; i >= 0; i--) REQUIRE(clip_sample(&p, i / 5, i % 5, 400, 640, 480, &b[i], &err) == 0, "%s", err.msg);
    CHECK(memcmp(a, b, sizeof a) == 0, "order of calls changed the specs");
    int differ_view = 0, differ_seed = 0;
    for (int i = 0; i < 50; i++) {
        clip_spec c;
        p.seed = 43;
        REQUIRE(clip_sample(&p, i / 5, i % 5, 400, 640, 480, &c, &err) == 0, "%s", err.msg);
        p.seed = 42;
        differ_seed += c.start != a[i].start || memcmp(&c.crop, &a[i].crop, sizeof c.crop) != 0;
        if (i % 5) differ_view += a[i].start != a[i - 1].start;
    }
    CHECK(differ_seed > 40, "another seed changed only %d of 50 specs", differ_seed);
    CHECK(differ_view > 30, "views of a video differ in only %d of 40 starts", differ_view);
}

static void test_bad_params(void) {
    clip_params p = default_params();
    mvd_err err;
    clip_spec s;
    p.num_frames = CLIP_MAX_FRAMES + 1;
    CHECK(clip_sample(&p, 0, 0, 100, 64, 64, &s, &err) != 0, "too many frames");
    p = default_params();
    p.frame_stride = 0;
    CHECK(clip_sample(&p, 0, 0, 100, 64, 64, &s, &err) != 0, "stride 0");
    p = default_params();
    CHECK(clip_sample(&p, 0, 0, 0, 64, 64, &s, &err) != 0, "zero frames");
    CHECK(clip_sample(&p, 0, 0, 10, 1, 1, &s, &err) != 0, "1x1 frame cannot be multi-scale cropped");
    test_report("%s", err.msg);
}

/* The formulas on a grid of inputs, for the Python comparison with tests/reference/formulas.py. */
static void test_write_formulas(void) {
    mvd_err err;
    REQUIRE(mkdir_p(OUT_DIR, &err) == 0, "%s", err.msg);
    FILE *f = fopen(OUT_DIR "/formulas.txt", "w");
    REQUIRE(f, "cannot write formulas.txt");
    static const int strides[] = {1, 2, 4}, counts[] = {16, 8};
    for (int64_t n = 1; n <= 80; n++)
        for (int si = 0; si < 3; si++)
            for (int ci = 0; ci < 2; ci++) {
                int64_t span = (int64_t)counts[ci] * strides[si], max_start = n >= span ? n - span : 0;
                int64_t starts[3] = {0, max_start / 2, max_start};
                for (int k = 0; k < 3; k++) {
                    int64_t idx[CLIP_MAX_FRAMES];
                    int rep = clip_frame_indices(starts[k], counts[ci], strides[si], n, idx);
                    fprintf(f, "indices %lld %d %d %lld :", (long long)starts[k], counts[ci], strides[si], (long long)n);
                    for (int i = 0; i < counts[ci]; i++) fprintf(f, " %lld", (long long)idx[i]);
                    fprintf(f, " ; %d\n", rep);
                }
                /* The observed range of starts from clip_sample against the formula's. */
                clip_params p = {.num_frames = counts[ci], .frame_stride = strides[si], .input_size = 224, .seed = 5};
                int64_t lo = INT64_MAX, hi = -1;
                for (int view = 0; view < 400; view++) {
                    clip_spec s;
                    REQUIRE(clip_sample(&p, n, view, n, 320, 240, &s, &err) == 0, "%s", err.msg);
                    if (s.start < lo) lo = s.start;
                    if (s.start > hi) hi = s.start;
                }
                fprintf(f, "start %lld %d %d : %lld %lld\n", (long long)n, counts[ci], strides[si], (long long)lo,
                        (long long)hi);
            }
    static const int dims[][2] = {{720, 528}, {768, 576}, {320, 240}, {640, 480}, {427, 240}, {240, 427},
                                  {1920, 1080}, {226, 300}, {300, 222}, {221, 221}, {100, 60}, {341, 256}};
    static const int inputs[] = {224, 112, 32};
    for (int d = 0; d < 12; d++)
        for (int in = 0; in < 3; in++) {
            int pairs[CLIP_MAX_CROP_PAIRS][2];
            int np = clip_crop_candidates(dims[d][0], dims[d][1], inputs[in], pairs);
            fprintf(f, "crops %d %d %d :", dims[d][0], dims[d][1], inputs[in]);
            for (int k = 0; k < np; k++) fprintf(f, " %d,%d", pairs[k][0], pairs[k][1]);
            fprintf(f, "\n");
            for (int k = 0; k < np; k++) {
                int offs[CLIP_NUM_CROP_OFFSETS][2];
                clip_crop_offsets(dims[d][0], dims[d][1], pairs[k][0], pairs[k][1], offs);
                fprintf(f, "offsets %d %d %d %d :", dims[d][0], dims[d][1], pairs[k][0], pairs[k][1]);
                for (int o = 0; o < CLIP_NUM_CROP_OFFSETS; o++) fprintf(f, " %d,%d", offs[o][0], offs[o][1]);
                fprintf(f, "\n");
            }
        }
    static const double ratios[] = {0.9, 0.75, 0.5, 0.95, 0.8};
    static const int grids[] = {14, 16, 7, 4, 2};
    for (int r = 0; r < 5; r++)
        for (int g = 0; g < 5; g++)
            fprintf(f, "mask %.17g %d %d : %lld\n", ratios[r], grids[g], grids[g],
                    (long long)mask_count_spatial(ratios[r], (int64_t)grids[g] * grids[g]));
    CHECK(fclose(f) == 0, "close failed");
}

/* One clip of cup.mp4 from spec to model inputs; the pixels go to the Python test. */
static void test_spec_to_pixels(void) {
    const char *path = "examples/data/cup.mp4";
    video_info info;
    mvd_err err;
    REQUIRE(video_probe(path, &info, &err) == 0, "%s (run bash scripts/fetch-sample-data.sh)", err.msg);
    clip_params p = {.num_frames = 4, .frame_stride = 4, .input_size = 224, .crop = CROP_MULTISCALE, .seed = 11};
    clip_spec spec;
    REQUIRE(clip_sample(&p, 3, 0, info.num_frames, info.width, info.height, &spec, &err) == 0, "%s", err.msg);
    uint8_t *crops = xmalloc(clip_crop_bytes(&spec));
    REQUIRE(clip_decode(path, &info, &spec, crops, &err) == 0, "%s", err.msg);
    for (int t = 0; t < spec.num_frames; t++) CHECK(spec.pts[t] == info.pts[spec.frame_index[t]], "pts of frame %d", t);
    CHECK(spec.time_base_num == info.time_base_num && spec.time_base_den == info.time_base_den, "time base");
    enum { S = 224, SI = 112 };
    uint8_t *frames = xmalloc((size_t)4 * S * S * 3), *teacher = xmalloc((size_t)4 * SI * SI * 3);
    REQUIRE(clip_resize(&spec, crops, S, frames, &err) == 0, "%s", err.msg);
    REQUIRE(clip_resize(&spec, crops, SI, teacher, &err) == 0, "%s", err.msg);
    clip_pixel_sha256(frames, 4, S, spec.pixel_sha256);
    float *norm = xmalloc(sizeof(float) * 3 * 4 * S * S), *img = xmalloc(sizeof(float) * 2 * 3 * SI * SI);
    clip_normalize(frames, 4, S, norm);
    REQUIRE(clip_image_teacher_input(teacher, 4, 2, SI, img, &err) == 0, "%s", err.msg);
    CHECK(clip_image_teacher_input(teacher, 4, 3, SI, img, &err) != 0, "tubelet 3 does not divide 4");
    /* Spot checks of the layouts: channel-major for the student, frame 2 for the teacher's second image. */
    size_t px = (size_t)S * S;
    float want = ((float)frames[(1 * px + 5) * 3 + 2] / 255.0f - 0.406f) / 0.225f;
    CHECK(norm[2 * 4 * px + 1 * px + 5] == want, "student layout [c][t][y][x]");
    size_t pi = (size_t)SI * SI;
    want = ((float)teacher[(2 * pi + 9) * 3 + 0] / 255.0f - 0.485f) / 0.229f;
    CHECK(img[1 * 3 * pi + 9] == want, "teacher layout [t/tubelet][c][y][x] from frame 2");
    /* A second decode gives the same pixels. */
    uint8_t *again = xmalloc(clip_crop_bytes(&spec));
    REQUIRE(clip_decode(path, &info, &spec, again, &err) == 0, "%s", err.msg);
    CHECK(memcmp(crops, again, clip_crop_bytes(&spec)) == 0, "decode not deterministic");
    REQUIRE(mkdir_p(OUT_DIR, &err) == 0, "%s", err.msg);
    char meta[512];
    snprintf(meta, sizeof meta, "%d %d %d %d %d %d %s\n", spec.num_frames, spec.crop.w, spec.crop.h, S, SI, 2,
             spec.pixel_sha256);
    CHECK(test_write_file(OUT_DIR, "pixels_meta.txt", meta, strlen(meta)) == 0 &&
              test_write_file(OUT_DIR, "crops.rgb", crops, clip_crop_bytes(&spec)) == 0 &&
              test_write_file(OUT_DIR, "frames224.rgb", frames, (size_t)4 * S * S * 3) == 0 &&
              test_write_file(OUT_DIR, "frames112.rgb", teacher, (size_t)4 * SI * SI * 3) == 0 &&
              test_write_file(OUT_DIR, "student_input.f32", norm, sizeof(float) * 3 * 4 * S * S) == 0 &&
              test_write_file(OUT_DIR, "teacher_input.f32", img, sizeof(float) * 2 * 3 * SI * SI) == 0,
          "cannot write pixels");
    test_report("clip crop %dx%d at (%d,%d), frames %lld..%lld, sha256 %.16s...", spec.crop.w, spec.crop.h, spec.crop.x,
                spec.crop.y, (long long)spec.frame_index[0], (long long)spec.frame_index[3], spec.pixel_sha256);
    free(again);
    free(norm);
    free(img);
    free(frames);
    free(teacher);
    free(crops);
    video_info_free(&info);
}

int main(void) {
    video_quiet_ffmpeg_log();
    RUN(test_indices_long_video);
    RUN(test_indices_short_video);
    RUN(test_crops_inside_and_varied);
    RUN(test_snap_beyond_frame);
    RUN(test_center_crop);
    RUN(test_determinism_and_independence);
    RUN(test_bad_params);
    RUN(test_write_formulas);
    RUN(test_spec_to_pixels);
    return test_summary();
}
