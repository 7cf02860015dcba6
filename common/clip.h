/* clip.h: what a training clip is, as a pure function of a seed and a video's metadata.
 *
 * A clip_spec says exactly which pixels a clip holds: the video, the decoded frame indices (frame i is the
 * i-th decodable frame in presentation order) with their presentation timestamps, and the crop box in the
 * upright (rotation-applied) frame. mvd-extract stores every spec in the cache so mvd-train decodes the very
 * pixels the teachers saw; pixel_sha256 proves it. */
#ifndef MVD_CLIP_H
#define MVD_CLIP_H

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

#endif
