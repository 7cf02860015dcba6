/* clip.c: clip sampling as a pure function of a seed, and the path from a clip_spec to model inputs.
 *
 * The formulas follow the reference's pretraining data path (VideoDistillation in kinetics.py and
 * GroupMultiScaleTwoResizedCrop in transforms.py of ruiwang2021/mvd), so that a clip here is one the reference
 * could have drawn; only the random generator differs (ours is keyed by seed, video and view). Where the
 * reference has quirks they are kept on purpose and noted below. tests/reference/formulas.py transcribes the
 * same formulas in Python and the tests compare the two. */
#include "clip.h"

#include <stdlib.h>
#include <string.h>

#include "resize.h"
#include "rng.h"
#include "video.h"

static const double clip_scales[CLIP_NUM_SCALES] = {1.0, 0.875, 0.75, 0.66};

/* Python's floor division, which the reference's offset steps use: a crop 1-2 px wider than the frame
 * (possible after the 3-px snap) gives a step of -1, not 0. */
static int floor_div(int a, int b) {
    int q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* The reference's rule (kinetics.py, VideoDistillation._video_TSN_decord_batch_loader with one segment and
 * no temporal jitter): it walks a 1-based offset and only advances while offset + stride < num_frames. In
 * 0-based terms the next index f + stride is taken only if f + stride <= num_frames - 2; otherwise the
 * previous index repeats. So a short video repeats its last index reachable that way, and the very last frame
 * is reachable only as the start (with stride 1 and the latest start the final index repeats too). Kept as
 * is: these are the frames the reference trains on. */
int clip_frame_indices(int64_t start, int count, int stride, int64_t video_frames, int64_t *out) {
    int repeated = 0;
    int64_t f = start;
    for (int k = 0; k < count; k++) {
        out[k] = f;
        if (k + 1 < count) {
            if (f + stride <= video_frames - 2) f += stride;
            else repeated++;
        }
    }
    return repeated;
}

/* Start frame, uniform on [0, N - T*stride] when the video holds the whole span, else 0: the reference's
 * `randint(N - span + 1)` (its second branch, N > span, is unreachable once the first fails). The reference
 * counts N with decord's len(); ours is the decodable count from video_probe. Where the reference draws several
 * segments per video (num_sample > 1: one start per equal slice of the range), views draw independent starts
 * over the whole range here. */
static int64_t sample_start(const clip_params *p, int64_t video_index, int view, int64_t video_frames) {
    int64_t span = (int64_t)p->num_frames * p->frame_stride;
    if (video_frames < span) return 0;
    rng_state r;
    rng_init(&r, rng_key(p->seed, (uint64_t)video_index, (uint64_t)view, CLIP_RNG_TAG_START));
    return (int64_t)rng_below(&r, (uint64_t)(video_frames - span + 1));
}

int clip_crop_candidates(int width, int height, int input_size, int pairs[CLIP_MAX_CROP_PAIRS][2]) {
    int base = width < height ? width : height;
    int side[CLIP_NUM_SCALES];
    for (int s = 0; s < CLIP_NUM_SCALES; s++) {
        int size = (int)(base * clip_scales[s]); /* Python's int(): truncation of the double product */
        side[s] = abs(size - input_size) < 3 ? input_size : size;
    }
    /* The reference snaps widths and heights separately against input_size[0] and [1]; ours is square, so
     * one list serves both. Pairs: height index i (outer loop), width index j, |i - j| <= 1. */
    int n = 0;
    for (int i = 0; i < CLIP_NUM_SCALES; i++)
        for (int j = 0; j < CLIP_NUM_SCALES; j++)
            if (abs(i - j) <= 1) {
                pairs[n][0] = side[j];
                pairs[n][1] = side[i];
                n++;
            }
    return n;
}

void clip_crop_offsets(int width, int height, int crop_w, int crop_h, int offsets[CLIP_NUM_CROP_OFFSETS][2]) {
    int ws = floor_div(width - crop_w, 4), hs = floor_div(height - crop_h, 4);
    /* In steps: corners, centre, edge midpoints, quarter points, in the reference's order. */
    static const int grid[CLIP_NUM_CROP_OFFSETS][2] = {{0, 0}, {4, 0}, {0, 4}, {4, 4}, {2, 2}, {0, 2}, {4, 2},
                                                       {2, 4}, {2, 0}, {1, 1}, {3, 1}, {1, 3}, {3, 3}};
    for (int k = 0; k < CLIP_NUM_CROP_OFFSETS; k++) {
        offsets[k][0] = grid[k][0] * ws;
        offsets[k][1] = grid[k][1] * hs;
    }
}

static int sample_crop(const clip_params *p, int64_t video_index, int view, int width, int height, crop_box *out,
                       mvd_err *err) {
    if (p->crop == CROP_CENTER) {
        int side = width < height ? width : height;
        /* Floor of the centring offset (torchvision's CenterCrop would round halves to even). */
        *out = (crop_box){(width - side) / 2, (height - side) / 2, side, side};
        return 0;
    }
    if (p->crop != CROP_MULTISCALE) return mvd_fail(err, "clip: unknown crop mode %d", (int)p->crop);
    int pairs[CLIP_MAX_CROP_PAIRS][2], offsets[CLIP_NUM_CROP_OFFSETS][2];
    int n = clip_crop_candidates(width, height, p->input_size, pairs);
    /* Refused whatever the draw, so whether a video is usable never depends on the seed. */
    for (int k = 0; k < n; k++)
        if (pairs[k][0] < 1 || pairs[k][1] < 1)
            return mvd_fail(err, "clip: a %dx%d frame is too small for a multi-scale crop (candidate %dx%d)", width,
                            height, pairs[k][0], pairs[k][1]);
    rng_state r;
    rng_init(&r, rng_key(p->seed, (uint64_t)video_index, (uint64_t)view, CLIP_RNG_TAG_CROP_SIZE));
    int pick = (int)rng_below(&r, (uint64_t)n);
    int cw = pairs[pick][0], ch = pairs[pick][1];
    clip_crop_offsets(width, height, cw, ch, offsets);
    rng_init(&r, rng_key(p->seed, (uint64_t)video_index, (uint64_t)view, CLIP_RNG_TAG_CROP_POS));
    int at = (int)rng_below(&r, CLIP_NUM_CROP_OFFSETS);
    *out = (crop_box){offsets[at][0], offsets[at][1], cw, ch};
    return 0;
}

static int check_params(const clip_params *p, int64_t num_frames, int width, int height, mvd_err *err) {
    if (p->num_frames < 1 || p->num_frames > CLIP_MAX_FRAMES)
        return mvd_fail(err, "clip: num_frames %d outside [1, %d]", p->num_frames, CLIP_MAX_FRAMES);
    if (p->frame_stride < 1) return mvd_fail(err, "clip: frame_stride %d must be positive", p->frame_stride);
    if (p->input_size < 1) return mvd_fail(err, "clip: input_size %d must be positive", p->input_size);
    if (num_frames < 1) return mvd_fail(err, "clip: the video has no frames");
    if (width < 1 || height < 1) return mvd_fail(err, "clip: invalid frame size %dx%d", width, height);
    return 0;
}

int clip_sample(const clip_params *p, int64_t video_index, int view, int64_t num_frames, int width, int height,
                clip_spec *out, mvd_err *err) {
    if (check_params(p, num_frames, width, height, err) != 0) return -1;
    memset(out, 0, sizeof *out);
    out->video_index = video_index;
    out->view = view;
    out->num_frames = p->num_frames;
    out->start = sample_start(p, video_index, view, num_frames);
    out->repeated = clip_frame_indices(out->start, p->num_frames, p->frame_stride, num_frames, out->frame_index);
    for (int i = 0; i < CLIP_MAX_FRAMES; i++) out->pts[i] = INT64_MIN;
    return sample_crop(p, video_index, view, width, height, &out->crop, err);
}

size_t clip_crop_bytes(const clip_spec *spec) {
    return (size_t)spec->num_frames * (size_t)spec->crop.w * (size_t)spec->crop.h * 3;
}

int clip_decode(const char *path, const struct video_info *info, clip_spec *spec, uint8_t *crops, mvd_err *err) {
    if (spec->num_frames < 1 || spec->num_frames > CLIP_MAX_FRAMES)
        return mvd_fail(err, "%s: clip with %d frames", path, spec->num_frames);
    if (video_read_frames(path, info, spec->frame_index, spec->num_frames, spec->crop, crops, spec->pts, err) != 0)
        return -1;
    spec->time_base_num = info->time_base_num;
    spec->time_base_den = info->time_base_den;
    return 0;
}

int clip_decode_by_pts(const char *path, const clip_spec *spec, uint8_t *crops, mvd_err *err) {
    if (spec->num_frames < 1 || spec->num_frames > CLIP_MAX_FRAMES)
        return mvd_fail(err, "%s: clip with %d frames", path, spec->num_frames);
    video_pts_request rq = {.pts = spec->pts, .indices = spec->frame_index, .n = spec->num_frames,
                            .time_base_num = spec->time_base_num, .time_base_den = spec->time_base_den,
                            .crop = spec->crop};
    return video_read_frames_by_pts(path, &rq, crops, NULL, err);
}

int clip_resize(const clip_spec *spec, const uint8_t *crops, int size, uint8_t *out, mvd_err *err) {
    size_t in_bytes = (size_t)spec->crop.w * (size_t)spec->crop.h * 3, out_bytes = (size_t)size * (size_t)size * 3;
    for (int t = 0; t < spec->num_frames; t++)
        if (resize_bilinear_pil(crops + t * in_bytes, spec->crop.w, spec->crop.h, (size_t)spec->crop.w * 3,
                                out + t * out_bytes, size, size, err) != 0)
            return -1;
    return 0;
}

void clip_pixel_sha256(const uint8_t *frames, int num_frames, int size, char hex[65]) {
    sha256_hex(frames, (size_t)num_frames * (size_t)size * (size_t)size * 3, hex);
}

static const float clip_mean[3] = {0.485f, 0.456f, 0.406f};
static const float clip_std[3] = {0.229f, 0.224f, 0.225f};

/* One frame [S][S][3] into three planes out + c * plane_stride. The operations are those of the reference
 * (ToTorchFormatTensor's div(255.), then GroupNormalize's sub_(mean).div_(std)), each rounded to float. */
static void normalize_frame(const uint8_t *frame, int size, float *out, size_t plane_stride) {
    size_t pixels = (size_t)size * (size_t)size;
    for (int c = 0; c < 3; c++) {
        float *plane = out + (size_t)c * plane_stride;
        for (size_t i = 0; i < pixels; i++) {
            float v = (float)frame[i * 3 + c] / 255.0f;
            v = v - clip_mean[c];
            plane[i] = v / clip_std[c];
        }
    }
}

void clip_normalize(const uint8_t *frames, int num_frames, int size, float *out) {
    size_t pixels = (size_t)size * (size_t)size;
    for (int t = 0; t < num_frames; t++)
        normalize_frame(frames + (size_t)t * pixels * 3, size, out + (size_t)t * pixels, (size_t)num_frames * pixels);
}

int clip_image_teacher_input(const uint8_t *frames, int num_frames, int tubelet, int size, float *out,
                             mvd_err *err) {
    if (tubelet < 1 || num_frames % tubelet != 0)
        return mvd_fail(err, "clip: tubelet %d does not divide %d frames", tubelet, num_frames);
    size_t pixels = (size_t)size * (size_t)size;
    for (int t = 0; t < num_frames / tubelet; t++)
        normalize_frame(frames + (size_t)t * tubelet * pixels * 3, size, out + (size_t)t * 3 * pixels, pixels);
    return 0;
}
