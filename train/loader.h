/* loader.h: streams training batches from a target cache: the clips' pixels, decoded again from the videos
 * exactly as the cache recorded them, and the cached teacher targets.
 *
 * The cache's manifest lists the shards; at open the loader reads every clip's small description (video index
 * and view, not its targets) into an index, so memory is a few bytes per clip plus one batch, whatever the
 * cache's size. An epoch visits every cached video once, with view (epoch mod views), in a permutation drawn
 * from (seed, epoch). A clip's mask is a function of (seed, epoch, clip) alone. Each decoded clip's pixels are
 * checked against the SHA-256 stored at extraction, so a changed video or decoder cannot silently train on
 * other pixels than the teachers saw. */
#ifndef MVD_LOADER_H
#define MVD_LOADER_H

#include <stdint.h>

#include "cache_meta.h"
#include "manifest.h"
#include "util.h"

typedef enum { PIXEL_CHECK_ERROR = 0, PIXEL_CHECK_WARN = 1, PIXEL_CHECK_OFF = 2 } pixel_check_mode;

typedef struct loader loader;

/* A batch in the layout student_batch takes; buffers are owned by the loader and reused. */
typedef struct {
    int64_t B;
    float *clips;       /* (B, 3, T, S, S) normalised */
    uint8_t *masks;     /* (B, N) 1 = masked */
    float *target_img;  /* (B, N, Di) */
    float *target_vid;  /* (B, N, Dv) */
} loader_batch;

int loader_open(loader **out, const char *cache_dir, const char *data_root, pixel_check_mode check, int64_t batch,
                double mask_ratio, uint64_t seed, mvd_err *err);
void loader_close(loader *l);
const cache_meta *loader_meta(const loader *l);
/* Videos an epoch visits (videos with at least one cached clip). */
int64_t loader_num_videos(const loader *l);
int64_t loader_num_clips(const loader *l);
/* Fills the batch holding epoch positions [first, first + B) of the epoch's permutation. */
int loader_fill(loader *l, int64_t epoch, int64_t first, loader_batch *batch, mvd_err *err);
loader_batch *loader_batch_buffers(loader *l);

#endif
