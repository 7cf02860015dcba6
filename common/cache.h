/* cache.h: target cache shards, HDF5 files holding cached teacher targets and the clip each was made from.
 *
 * A shard `<dir>/shard-NNNNN.h5` holds up to meta.shard_size clips. Root attributes carry the cache_meta (one
 * attribute per field, plus "metadata_json"), /clips/ one row per clip (the clip_spec fields, the video's
 * path and label as in the list, its decoded frame count), /targets/image and /targets/video one chunk per
 * clip, [clips, tokens, D], filtered shuffle + zstd (32015), stored as IEEE fp16 (default) or fp32. The full
 * layout is schemas/cache-v1.md.
 *
 * The writer builds `shard-NNNNN.h5.tmp` and renames it to its final name only after the file is complete and
 * synced, so a file with the final name is always whole. The reader validates the metadata, every dataset's
 * rank, dims, dtype and chunking against it before allocating anything, and reads one clip at a time.
 * A writer or reader is used by one thread at a time; Debian's thread-safe HDF5 serialises all calls anyway. */
#ifndef MVD_CACHE_H
#define MVD_CACHE_H

#include <stdint.h>

#include "cache_meta.h"
#include "clip.h"
#include "util.h"

#define CACHE_SHARD_NAME_MAX 32

/* One cached clip's description. From the reader, path and label are owned (free with cache_clip_free). */
typedef struct {
    clip_spec spec;
    char *path;           /* the video's path as written in the list (relative to the data root) */
    char *label;          /* its label string from the list */
    int64_t video_frames; /* decoded frame count of the video */
} cache_clip;

/* A completed shard, as the manifest records it. */
typedef struct {
    char file[CACHE_SHARD_NAME_MAX]; /* "shard-00000.h5", relative to the cache folder */
    int64_t clips;
    int64_t first_video_index, last_video_index; /* of its first and last clip; -1 when empty */
    char sha256[65];                 /* of the file; "" when not computed */
} cache_shard_info;

typedef struct cache_shard_writer cache_shard_writer;
typedef struct cache_shard_reader cache_shard_reader;

/* "shard-%05d.h5" */
void cache_shard_name(int shard_index, char name[CACHE_SHARD_NAME_MAX]);

/* Creates <dir>/shard-NNNNN.h5.tmp (replacing a stale one) with the metadata attributes and empty datasets. */
int cache_shard_writer_open(cache_shard_writer **out, const char *dir, int shard_index, const cache_meta *meta,
                            mvd_err *err);
/* Appends one clip: its description and both targets, fp32 row-major [tokens, feature_dim]. */
int cache_shard_writer_append(cache_shard_writer *w, const cache_clip *clip, const float *image_target,
                              const float *video_target, mvd_err *err);
int64_t cache_shard_writer_clips(const cache_shard_writer *w);
/* Writes the final attributes, closes and syncs the file, renames it to shard-NNNNN.h5, fills info (sha256 left
 * empty) and frees w. On failure the temporary file is removed and w is freed too. */
int cache_shard_writer_finish(cache_shard_writer *w, cache_shard_info *info, mvd_err *err);
/* Closes and removes the temporary file, frees w. NULL is allowed. */
void cache_shard_writer_abort(cache_shard_writer *w);

/* Opens a complete shard and validates it (see above). */
int cache_shard_reader_open(cache_shard_reader **out, const char *path, mvd_err *err);
const cache_meta *cache_shard_reader_meta(const cache_shard_reader *r);
int64_t cache_shard_reader_clips(const cache_shard_reader *r);
/* Reads clip i's description into clip (overwritten; free with cache_clip_free). */
int cache_shard_reader_clip(cache_shard_reader *r, int64_t i, cache_clip *clip, mvd_err *err);
/* The video index and view of every clip ([clips] each), read as two whole columns: what an index of a cache
 * needs, without cache_shard_reader_clip's per-clip reads. */
int cache_shard_reader_index(cache_shard_reader *r, int64_t *video_index, int32_t *view, mvd_err *err);
/* 0 when the shard holds what its manifest entry says (clip count, first and last video index); otherwise -1
 * naming the file and the difference. Catches a shard swapped for another of the same cache, which the
 * settings check cannot see. */
int cache_shard_reader_check_entry(cache_shard_reader *r, const cache_shard_info *entry, mvd_err *err);
/* Reads clip i's targets as fp32 into image [tokens, image_teacher.feature_dim] and video [tokens,
 * video_teacher.feature_dim]; either may be NULL to skip it. */
int cache_shard_reader_targets(cache_shard_reader *r, int64_t i, float *image, float *video, mvd_err *err);
/* Stored (compressed) bytes of each target dataset, for size reports. */
void cache_shard_reader_storage_bytes(cache_shard_reader *r, uint64_t *image_bytes, uint64_t *video_bytes);
void cache_shard_reader_close(cache_shard_reader *r);

void cache_clip_free(cache_clip *clip);

#endif
