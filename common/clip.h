/* clip.h: what a training clip is, as a pure function of a seed and a video's metadata.
 *
 * A clip_spec says exactly which pixels a clip holds: the video, the decoded frame indices (frame i is the
 * i-th decodable frame in presentation order) with their presentation timestamps, and the crop box in the
 * upright (rotation-applied) frame. mvd-extract stores every spec in the cache so mvd-train decodes the very
 * pixels the teachers saw; pixel_sha256 proves it. */
#ifndef MVD_CLIP_H
#define MVD_CLIP_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define CLIP_MAX_FRAMES 64

typedef struct {
    int x, y, w, h; /* in pixels of the upright source frame */
} crop_box;

typedef enum { CROP_MULTISCALE = 0, CROP_CENTER = 1 } crop_mode;

/* Sampling parameters shared by every clip of a cache (recorded in it). */
typedef struct {
    int num_frames;   /* frames per clip (16) */
    int frame_stride; /* distance between sampled frames (4) */
    int input_size;   /* student input side in pixels (224) */
    crop_mode crop;
    uint64_t seed;
} clip_params;

typedef struct {
    int64_t video_index;  /* index of the video in the list (0-based, counting valid lines) */
    int view;             /* 0 .. views-1 */
    int num_frames;
    int64_t start;        /* first sampled frame index */
    int64_t frame_index[CLIP_MAX_FRAMES];
    int64_t pts[CLIP_MAX_FRAMES]; /* presentation timestamps, in units of the stream time base */
    int time_base_num, time_base_den;
    int repeated;         /* how many of the indices were clamped to the last frame (short videos) */
    crop_box crop;
    char pixel_sha256[65]; /* SHA-256 of the resized uint8 RGB frames, (t, h, w, c) order */
} clip_spec;

/* Tags that separate the random choices of one clip: each choice draws from its own stream
 * rng_key(seed, video_index, view, tag), so adding a choice never shifts another. */
#define CLIP_RNG_TAG_START 0x7374617274ULL     /* "start" */
#define CLIP_RNG_TAG_CROP_SIZE 0x6373697a65ULL /* "csize" */
#define CLIP_RNG_TAG_CROP_POS 0x63706f73ULL    /* "cpos" */

/* The multi-scale crop's scales, as the reference lists them. */
#define CLIP_NUM_SCALES 4
#define CLIP_MAX_CROP_PAIRS (CLIP_NUM_SCALES * CLIP_NUM_SCALES)
#define CLIP_NUM_CROP_OFFSETS 13

struct video_info; /* video.h */

/* Samples clip `view` of video `video_index` (num_frames decodable frames, upright size width x height):
 * frame indices, repeat count and crop box. Pure: the same arguments give the same spec. pts, time base and
 * pixel_sha256 are left empty (INT64_MIN, 0, "") for clip_decode and clip_pixel_sha256 to fill. Fails for
 * parameters out of range or a frame too small to crop. */
int clip_sample(const clip_params *p, int64_t video_index, int view, int64_t num_frames, int width, int height,
                clip_spec *out, mvd_err *err);

/* The pieces of clip_sample, exposed so the tests can compare them with the reference's formulas. */
/* Indices of `count` frames from `start` at `stride` in a video of video_frames frames, with the reference's
 * repeat rule; returns how many were held back (repeated). */
int clip_frame_indices(int64_t start, int count, int stride, int64_t video_frames, int64_t *out);
/* Candidate (w, h) crop sizes of the multi-scale crop, in the reference's order; returns how many. */
int clip_crop_candidates(int width, int height, int input_size, int pairs[CLIP_MAX_CROP_PAIRS][2]);
/* The 13 candidate (x, y) offsets of a crop_w x crop_h crop, in the reference's order. */
void clip_crop_offsets(int width, int height, int crop_w, int crop_h, int offsets[CLIP_NUM_CROP_OFFSETS][2]);

/* Bytes of the decoded crops of a spec: num_frames x crop.h x crop.w x 3. */
size_t clip_crop_bytes(const clip_spec *spec);

/* Decodes the spec's frames cropped to its box into crops ([T][crop.h][crop.w][3], clip_crop_bytes), and
 * fills spec->pts and the time base. */
int clip_decode(const char *path, const struct video_info *info, clip_spec *spec, uint8_t *crops, mvd_err *err);

/* Decodes the spec's frames by the timestamps recorded at extraction, without a probe: video_read_frames_by_pts
 * with the spec's frame indices and time base, seeking to the first frame. Returns 0 (crops filled, equal to
 * clip_decode's), 1 (VIDEO_PTS_FALLBACK: timestamps cannot vouch for the frames, e.g. one was not recorded;
 * probe and use clip_decode; err says why) or -1 (the video cannot be read; err names it). spec is not
 * changed. */
int clip_decode_by_pts(const char *path, const clip_spec *spec, uint8_t *crops, mvd_err *err);

/* Resizes every decoded crop to size x size (PIL bilinear): out is [T][size][size][3]. Used for the student's
 * input (input_size) and for an image teacher with its own input size. */
int clip_resize(const clip_spec *spec, const uint8_t *crops, int size, uint8_t *out, mvd_err *err);

/* SHA-256 of resized frames ([T][size][size][3] uint8, in that order): the spec's pixel_sha256 is this of the
 * student-size frames. */
void clip_pixel_sha256(const uint8_t *frames, int num_frames, int size, char hex[65]);

/* The student's input: frames [T][S][S][3] uint8 -> float [3][T][S][S], scaled to [0,1], then ImageNet mean
 * and std, in float32 operations in the reference's order (so the values equal torch's bit for bit). */
void clip_normalize(const uint8_t *frames, int num_frames, int size, float *out);

/* The image teacher's input: frames 0, tubelet, 2*tubelet, ... of [T][S][S][3] as float [T/tubelet][3][S][S],
 * normalised as clip_normalize does. Fails unless tubelet divides num_frames. */
int clip_image_teacher_input(const uint8_t *frames, int num_frames, int tubelet, int size, float *out,
                             mvd_err *err);

#endif
