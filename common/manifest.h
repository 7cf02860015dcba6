/* manifest.h: <cache dir>/manifest.json, the index of a target cache.
 *
 * The manifest names the cache's settings (the same cache_meta as every shard), the shards completed so far,
 * the videos that failed (path and reason) and whether the extraction finished. It is rewritten atomically
 * (temporary file, fsync, rename) every time it changes, so after a crash it lists exactly the shards that were
 * complete, and an interrupted extraction resumes from it: refuse if the settings differ (naming the field),
 * skip the shards listed and present, go on appending. Its JSON layout is in schemas/cache-v1.md. */
#ifndef MVD_MANIFEST_H
#define MVD_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "cache.h"
#include "cache_meta.h"
#include "util.h"

#define MANIFEST_FILE_NAME "manifest.json"
#define MANIFEST_FORMAT_NAME "mvd-target-cache-manifest"
#define MANIFEST_FORMAT_VERSION 1

typedef struct {
    int64_t video_index; /* in the list; -1 when the failure is not tied to one video */
    char *path;          /* as written in the list */
    char *reason;        /* one line: why it was skipped */
} manifest_failure;

typedef struct {
    char *dir;                     /* the cache folder holding manifest.json and the shards */
    cache_meta meta;
    cache_shard_info *shards;      /* in the order they were added */
    size_t num_shards, cap_shards;
    manifest_failure *failures;
    size_t num_failures, cap_failures;
    int complete;                  /* 1 once the extraction went through the whole list */
} cache_manifest;

/* An empty manifest for dir with the given settings (nothing is written until a save). */
void manifest_init(cache_manifest *m, const char *dir, const cache_meta *meta);
/* 1 when <dir>/manifest.json exists. */
int manifest_exists(const char *dir);
/* Reads and validates <dir>/manifest.json into m (initialised here; free with manifest_free). */
int manifest_load(cache_manifest *m, const char *dir, mvd_err *err);
/* Writes <dir>/manifest.json atomically. */
int manifest_save(const cache_manifest *m, mvd_err *err);

/* Each appends to m and saves; on failure m is left as it was. A shard already listed is refused. */
int manifest_add_shard(cache_manifest *m, const cache_shard_info *shard, mvd_err *err);
int manifest_add_failure(cache_manifest *m, int64_t video_index, const char *path, const char *reason, mvd_err *err);
int manifest_set_complete(cache_manifest *m, int complete, mvd_err *err);

/* Removes a shard's entry (a shard found missing or damaged, to be made again) and saves; 0 if not listed. */
int manifest_drop_shard(cache_manifest *m, const char *file, mvd_err *err);
/* Removes the failures recorded for videos [first, end) (the shard holding them is being made again); no save. */
void manifest_forget_failures(cache_manifest *m, int64_t first, int64_t end);
/* The entry for a shard file name ("shard-00003.h5"), or NULL. */
const cache_shard_info *manifest_find_shard(const cache_manifest *m, const char *file);
/* Clips in all listed shards. */
int64_t manifest_total_clips(const cache_manifest *m);
void manifest_free(cache_manifest *m);

#endif
