/* cache_meta.h: everything that makes a target cache self-describing.
 *
 * A cache_meta records how targets were made: the format and tool versions, every preprocessing parameter that
 * decides the pixels, both teachers' architectures and weight hashes, the numeric settings and the storage
 * choices. It is written in full into every shard (one HDF5 attribute per field plus the whole as JSON) and into
 * the manifest, so a shard read alone says what it holds, and a resumed or extended extraction can refuse to mix
 * caches made with different settings, naming the field that differs.
 *
 * The fields are described once, in a table (cache_meta_fields), which drives the HDF5 attributes, the JSON, the
 * comparison and the validation alike, so the four cannot drift apart. schemas/cache-v1.md documents them. */
#ifndef MVD_CACHE_META_H
#define MVD_CACHE_META_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "util.h"

#define CACHE_FORMAT_NAME "mvd-target-cache"
#define CACHE_FORMAT_VERSION 1
#define CACHE_KIND_IMAGE_TEACHER "mae-vit-image"
#define CACHE_KIND_VIDEO_TEACHER "videomae-vit-video"
#define CACHE_DTYPE_F16 "float16"
#define CACHE_DTYPE_F32 "float32"

/* One teacher's architecture and identity. */
typedef struct {
    char kind[32];          /* CACHE_KIND_IMAGE_TEACHER or CACHE_KIND_VIDEO_TEACHER */
    int dim, depth, heads;  /* ViT width, blocks, attention heads */
    int mlp_hidden;         /* width of the MLP's hidden layer (dim x mlp_ratio) */
    int patch;              /* spatial patch side in pixels */
    int tubelet;            /* frames per token (1 for the image teacher) */
    int input_size;         /* side of the square input in pixels */
    int grid_t, grid_h, grid_w; /* token grid of the stored target, in the student's (t, h, w) order */
    int feature_dim;        /* D of the stored target [tokens, D] */
    char weights_sha256[65]; /* SHA-256 of the weights file (empty only when random_init) */
    char provenance[512];   /* optional: where the weights come from, their licence */
    int random_init;        /* 1: randomly initialised weights (tests, smoke runs), not a real teacher */
} cache_teacher;

typedef struct {
    char format[32];        /* CACHE_FORMAT_NAME */
    int format_version;     /* CACHE_FORMAT_VERSION */
    char tool_version[32];  /* MVD_VERSION of the writer */
    char ffmpeg_version[128];
    /* preprocessing: what decides the pixels */
    int num_frames, frame_stride;
    int input_size;         /* student input side */
    int image_input_size;   /* image teacher input side (the same crop, resized) */
    char crop_mode[16];     /* "multiscale" or "center" */
    uint64_t seed;
    int views;              /* clips sampled per video */
    double mean[3], std[3]; /* RGB normalisation */
    char resize_filter[32]; /* "pil-bilinear" */
    char colour_conversion[64]; /* "swscale bitexact accurate_rnd" */
    cache_teacher image, video;
    /* numerics and storage */
    char device[16];        /* "cpu", "cuda" */
    char precision[16];     /* "fp32", "bf16" */
    int norm_feature;       /* 1: targets are LayerNorm'd (no affine, eps 1e-6) over the feature dim */
    char storage_dtype[16]; /* CACHE_DTYPE_F16 (default) or CACHE_DTYPE_F32 */
    int zstd_level;
    int shard_size;         /* clips per shard (the last shard may hold fewer) */
    int tokens;             /* tokens per clip, both teachers */
    char list_path[4096];   /* the list file as given (informative, not compared) */
    char list_sha256[65];   /* SHA-256 of the list file's bytes */
} cache_meta;

typedef enum { CACHE_FIELD_INT, CACHE_FIELD_U64, CACHE_FIELD_DOUBLES, CACHE_FIELD_STRING } cache_field_kind;

typedef struct {
    const char *name;       /* attribute name; teacher fields are "image_teacher.dim", "video_teacher.dim"... */
    cache_field_kind kind;
    size_t offset;          /* into cache_meta */
    size_t count;           /* STRING: buffer capacity in bytes; DOUBLES: number of values; else 1 */
    int compared;           /* 1: part of the settings that must match to mix caches */
} cache_field;

/* What a trainer needs from a cache; a zero field means "any". */
typedef struct {
    int num_frames, input_size;
    int grid_t, grid_h, grid_w;
    int image_feature_dim, video_feature_dim;
} cache_geometry;

/* The field table, in storage order. */
const cache_field *cache_meta_fields(size_t *count);

/* Defaults: format/version, tool version, the reference's preprocessing (16 x 224, stride 4, multiscale crop,
 * ImageNet mean/std, PIL bilinear), ViT-B teachers on a 8 x 14 x 14 grid, cpu/fp32, float16, zstd level 3,
 * 1024 clips per shard. The extractor overwrites what it knows. */
void cache_meta_init(cache_meta *m);

/* Checks internal consistency (format, version, positive and bounded sizes, token grids equal to tokens, known
 * strings, hash syntax). Used on every metadata read from a file, before anything is allocated from it. */
int cache_meta_validate(const cache_meta *m, mvd_err *err);

/* 0 when every compared field is equal; otherwise -1 and a message naming the first differing field with both
 * values ("image_teacher.weights_sha256 differs: cache has ..., this run has ..."). */
int cache_meta_same_settings(const cache_meta *cache, const cache_meta *run, mvd_err *err);

/* 0 when the cache fits what a trainer expects; otherwise -1 naming the field. */
int cache_meta_check_geometry(const cache_meta *m, const cache_geometry *want, mvd_err *err);

/* Bytes per stored element (2 or 4). */
size_t cache_meta_element_size(const cache_meta *m);

/* JSON form: teacher fields nested as objects ("image_teacher": {...}); the seed as a decimal string (JSON
 * numbers are doubles and lose 64-bit integers). */
cJSON *cache_meta_to_json(const cache_meta *m);
int cache_meta_from_json(const cJSON *json, cache_meta *m, mvd_err *err);

/* 1 when s is a SHA-256 as the cache writes it: 64 lowercase hex digits. */
int cache_is_sha256_hex(const char *s);

/* One field's value as text, for messages. */
void cache_meta_field_text(const cache_meta *m, const cache_field *f, char *buf, size_t n);

#endif
