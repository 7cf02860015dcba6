/* test_resize.c: the PIL-exact bilinear resize.
 *
 * Small hand-checkable cases here; the comparison with Pillow itself is in tests/py/test_preprocess.py, which
 * reads the cases this program writes to build/test-out/resize/: real crops of every sample video (decoded by
 * the project's own decoder) and their resized versions, shrinking and enlarging, square and not. */
#include <string.h>

#include "clip.h"
#include "resize.h"
#include "test.h"
#include "test_files.h"
#include "video.h"

#define OUT_DIR "build/test-out/resize"

static void test_identity_and_constant(void) {
    enum { W = 13, H = 7 };
    uint8_t src[W * H * 3], dst[64 * 64 * 3];
    for (int i = 0; i < W * H * 3; i++) src[i] = (uint8_t)(i * 37 + 11);
    mvd_err err;
    REQUIRE(resize_bilinear_pil(src, W, H, W * 3, dst, W, H, &err) == 0, "%s", err.msg);
    CHECK(memcmp(src, dst, sizeof src) == 0, "same size must copy");
    /* A constant image stays constant whatever the scale: the weights of each output sum to one. */
    memset(src, 200, sizeof src);
    static const int sizes[][2] = {{5, 3}, {64, 64}, {1, 1}, {13, 30}, {2, 7}};
    for (int s = 0; s < 5; s++) {
        int ow = sizes[s][0], oh = sizes[s][1];
        REQUIRE(resize_bilinear_pil(src, W, H, W * 3, dst, ow, oh, &err) == 0, "%s", err.msg);
        int ok = 1;
        for (int i = 0; i < ow * oh * 3; i++) ok &= dst[i] == 200;
        CHECK(ok, "constant image changed at %dx%d", ow, oh);
    }
    CHECK(resize_bilinear_pil(src, W, H, W * 3, dst, 0, 4, &err) != 0, "zero size must fail");
    CHECK(resize_bilinear_pil(src, W, H, W * 3 - 1, dst, 4, 4, &err) != 0, "short stride must fail");
}

/* 4 -> 2 pixels in one row: scale 2, support 2. Output 0: center 1.0, sources 0..2 at x = -0.25, 0.25, 0.75
 * -> weights .75, .75, .25 -> (0*.75 + 100*.75 + 200*.25) / 1.75 = 71.4 -> 71. Output 1: center 3.0, sources
 * 1..3 -> weights .25, .75, .75 -> (25 + 150 + 30) / 1.75 = 117.1 -> 117. (Pillow gives the same.) */
static void test_hand_computed_shrink(void) {
    uint8_t src[4 * 3] = {0, 0, 0, 100, 100, 100, 200, 200, 200, 40, 40, 40}, dst[2 * 3];
    mvd_err err;
    REQUIRE(resize_bilinear_pil(src, 4, 1, 12, dst, 2, 1, &err) == 0, "%s", err.msg);
    CHECK(dst[0] == 71 && dst[3] == 117, "got %d %d, expected 71 117", dst[0], dst[3]);
}

/* A padded source stride reads the same pixels as a packed one. */
static void test_stride(void) {
    enum { W = 9, H = 5, PAD = 7 };
    uint8_t packed[W * H * 3], padded[(W * 3 + PAD) * H], a[4 * 11 * 3], b[4 * 11 * 3];
    for (int i = 0; i < W * H * 3; i++) packed[i] = (uint8_t)(i * 91 + 3);
    memset(padded, 0xAB, sizeof padded);
    for (int y = 0; y < H; y++) memcpy(padded + y * (W * 3 + PAD), packed + y * W * 3, W * 3);
    mvd_err err;
    REQUIRE(resize_bilinear_pil(packed, W, H, W * 3, a, 4, 11, &err) == 0, "%s", err.msg);
    REQUIRE(resize_bilinear_pil(padded, W, H, W * 3 + PAD, b, 4, 11, &err) == 0, "%s", err.msg);
    CHECK(memcmp(a, b, sizeof a) == 0, "stride changes the result");
}

/* Writes one case: the crop and its resize to ow x oh, and a manifest line for the Python test. */
static void write_case(FILE *manifest, const char *tag, const uint8_t *crop, int cw, int ch, int ow, int oh) {
    char in_name[128], out_name[128];
    snprintf(in_name, sizeof in_name, "%s_crop_%dx%d.rgb", tag, cw, ch);
    snprintf(out_name, sizeof out_name, "%s_out_%dx%d_to_%dx%d.rgb", tag, cw, ch, ow, oh);
    uint8_t *out = xmalloc((size_t)ow * oh * 3);
    mvd_err err;
    REQUIRE(resize_bilinear_pil(crop, cw, ch, (size_t)cw * 3, out, ow, oh, &err) == 0, "%s", err.msg);
    REQUIRE(test_write_file(OUT_DIR, in_name, crop, (size_t)cw * ch * 3) == 0 &&
                test_write_file(OUT_DIR, out_name, out, (size_t)ow * oh * 3) == 0,
            "cannot write case %s", out_name);
    fprintf(manifest, "%s %d %d %d %d %s %s\n", tag, cw, ch, ow, oh, in_name, out_name);
    free(out);
}

/* For every sample video: a multi-scale crop as training samples it, resized to the student's 224 and an
 * image teacher's 196, plus an odd-sized small crop enlarged to 224 and squeezed to a non-square size. */
static void test_write_pillow_cases(void) {
    static const char *videos[] = {"Megamind.avi", "vtest.avi", "tree.avi", "cup.mp4"};
    mvd_err err;
    REQUIRE(mkdir_p(OUT_DIR, &err) == 0, "%s", err.msg);
    FILE *manifest = fopen(OUT_DIR "/manifest.txt", "w");
    REQUIRE(manifest, "cannot write the manifest");
    int cases = 0;
    for (int v = 0; v < 4; v++) {
        char path[256];
        snprintf(path, sizeof path, "examples/data/%s", videos[v]);
        video_info info;
        if (video_probe(path, &info, &err) != 0) {
            CHECK(0, "%s (run bash scripts/fetch-sample-data.sh)", err.msg);
            continue;
        }
        clip_params p = {.num_frames = 2, .frame_stride = 4, .input_size = 224, .crop = CROP_MULTISCALE, .seed = 7};
        clip_spec spec;
        REQUIRE(clip_sample(&p, v, 0, info.num_frames, info.width, info.height, &spec, &err) == 0, "%s", err.msg);
        uint8_t *crops = xmalloc(clip_crop_bytes(&spec));
        REQUIRE(clip_decode(path, &info, &spec, crops, &err) == 0, "%s", err.msg);
        write_case(manifest, videos[v], crops, spec.crop.w, spec.crop.h, 224, 224);
        write_case(manifest, videos[v], crops, spec.crop.w, spec.crop.h, 196, 196);
        free(crops);
        crop_box small = {info.width / 3, info.height / 5, 101, 77};
        uint8_t *px = xmalloc((size_t)small.w * small.h * 3);
        int64_t idx = info.num_frames / 2;
        REQUIRE(video_read_frames(path, &info, &idx, 1, small, px, NULL, &err) == 0, "%s", err.msg);
        write_case(manifest, videos[v], px, small.w, small.h, 224, 224);
        write_case(manifest, videos[v], px, small.w, small.h, 57, 130);
        free(px);
        cases += 4;
        video_info_free(&info);
    }
    CHECK(fclose(manifest) == 0, "manifest close failed");
    test_report("%d cases written to %s (compared with Pillow by tests/py/test_preprocess.py)", cases, OUT_DIR);
}

int main(void) {
    video_quiet_ffmpeg_log();
    RUN(test_identity_and_constant);
    RUN(test_hand_computed_shrink);
    RUN(test_stride);
    RUN(test_write_pillow_cases);
    return test_summary();
}
