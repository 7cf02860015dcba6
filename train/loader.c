/* loader.c: see loader.h. */
#include "loader.h"

#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "clip.h"
#include "mask.h"
#include "rng.h"
#include "video.h"

#define LOADER_PERM_TAG 0x7065726dULL /* "perm" */
#define LOADER_MAX_OPEN_SHARDS 16
#define LOADER_PROBE_CACHE 64

/* Where one cached clip lives. */
typedef struct {
    int64_t video_index;
    int32_t view;
    int32_t shard; /* index into the manifest's shard list */
    int64_t row;
} clip_ref;

/* Clips are read by their recorded timestamps without a probe; the fallback (video_read_frames) needs the
 * probe of a video, a full decode pass, so the last few probes are kept for videos that keep needing it. */
typedef struct {
    char *path;
    video_info info;
} probe_entry;

struct loader {
    char *dir, *data_root;
    pixel_check_mode check;
    cache_manifest manifest;
    int64_t batch;
    double mask_ratio;
    uint64_t seed;
    int64_t n_clips, n_videos;
    clip_ref *clips;       /* sorted by (video_index, view) */
    int64_t *video_first;  /* [n_videos] first clip of each video in clips */
    int32_t *video_views;  /* [n_videos] clips of each video */
    cache_shard_reader **readers; /* [num_shards], opened on demand */
    int open_readers;
    probe_entry probes[LOADER_PROBE_CACHE];
    int next_probe;
    int64_t *perm, perm_epoch;
    int64_t T, S, N, Di, Dv, gt, gh, gw;
    uint8_t *frames;       /* (T, S, S, 3) */
    loader_batch out;
};

static int open_reader(loader *l, int32_t shard, cache_shard_reader **r, mvd_err *err) {
    if (l->readers[shard]) {
        *r = l->readers[shard];
        return 0;
    }
    if (l->open_readers >= LOADER_MAX_OPEN_SHARDS) { /* keep file handles bounded: close every open shard */
        for (size_t i = 0; i < l->manifest.num_shards; i++)
            if (l->readers[i]) cache_shard_reader_close(l->readers[i]), l->readers[i] = NULL;
        l->open_readers = 0;
    }
    char *path = path_join(l->dir, l->manifest.shards[shard].file);
    int rc = cache_shard_reader_open(&l->readers[shard], path, err);
    if (rc == 0 && cache_meta_same_settings(&l->manifest.meta, cache_shard_reader_meta(l->readers[shard]), err) != 0)
        rc = mvd_fail_ctx(err, "%s: shard settings differ from the manifest", path);
    free(path);
    if (rc != 0) {
        if (l->readers[shard]) cache_shard_reader_close(l->readers[shard]), l->readers[shard] = NULL;
        return -1;
    }
    l->open_readers++;
    *r = l->readers[shard];
    return 0;
}

static int compare_refs(const void *a, const void *b) {
    const clip_ref *x = a, *y = b;
    if (x->video_index != y->video_index) return x->video_index < y->video_index ? -1 : 1;
    return (x->view > y->view) - (x->view < y->view);
}

/* Reads every shard's clip index (video and view, not targets), checking each shard against its manifest
 * entry. */
static int build_index(loader *l, mvd_err *err) {
    int64_t total = manifest_total_clips(&l->manifest);
    l->clips = xcalloc((size_t)(total > 0 ? total : 1), sizeof(clip_ref));
    for (size_t s = 0; s < l->manifest.num_shards; s++) {
        cache_shard_reader *r;
        if (open_reader(l, (int32_t)s, &r, err) != 0 ||
            cache_shard_reader_check_entry(r, &l->manifest.shards[s], err) != 0)
            return -1;
        int64_t n = cache_shard_reader_clips(r); /* == the manifest's count, so l->clips has room */
        int64_t *video_index = xmalloc((size_t)(n + 1) * sizeof *video_index);
        int32_t *view = xmalloc((size_t)(n + 1) * sizeof *view);
        int rc = cache_shard_reader_index(r, video_index, view, err);
        for (int64_t i = 0; rc == 0 && i < n; i++)
            l->clips[l->n_clips++] = (clip_ref){video_index[i], view[i], (int32_t)s, i};
        free(video_index), free(view);
        if (rc != 0) return -1;
    }
    qsort(l->clips, (size_t)l->n_clips, sizeof(clip_ref), compare_refs);
    for (int64_t i = 1; i < l->n_clips; i++)
        if (compare_refs(&l->clips[i - 1], &l->clips[i]) == 0)
            return mvd_fail(err, "%s: video %lld view %d is cached twice (in %s and %s): a shard was copied over "
                            "another", l->dir, (long long)l->clips[i].video_index, l->clips[i].view,
                            l->manifest.shards[l->clips[i - 1].shard].file, l->manifest.shards[l->clips[i].shard].file);
    l->video_first = xcalloc((size_t)(l->n_clips + 1), sizeof(int64_t));
    l->video_views = xcalloc((size_t)(l->n_clips + 1), sizeof(int32_t));
    for (int64_t i = 0; i < l->n_clips; i++) {
        if (i == 0 || l->clips[i].video_index != l->clips[i - 1].video_index) l->video_first[l->n_videos++] = i;
        l->video_views[l->n_videos - 1]++;
    }
    return 0;
}

static void alloc_batch(loader *l) {
    const cache_meta *m = &l->manifest.meta;
    l->T = m->num_frames, l->S = m->input_size, l->N = m->tokens;
    l->Di = m->image.feature_dim, l->Dv = m->video.feature_dim;
    l->gt = m->video.grid_t, l->gh = m->video.grid_h, l->gw = m->video.grid_w;
    l->frames = xmalloc((size_t)(l->T * l->S * l->S * 3));
    l->out.clips = xmalloc((size_t)(l->batch * 3 * l->T * l->S * l->S) * sizeof(float));
    l->out.masks = xmalloc((size_t)(l->batch * l->N));
    l->out.target_img = xmalloc((size_t)(l->batch * l->N * l->Di) * sizeof(float));
    l->out.target_vid = xmalloc((size_t)(l->batch * l->N * l->Dv) * sizeof(float));
    l->perm = xmalloc((size_t)(l->n_videos > 0 ? l->n_videos : 1) * sizeof(int64_t));
    l->perm_epoch = -1;
}

int loader_open(loader **out, const char *cache_dir, const char *data_root, pixel_check_mode check, int64_t batch,
                double mask_ratio, uint64_t seed, mvd_err *err) {
    loader *l = xcalloc(1, sizeof *l);
    *out = NULL;
    l->dir = xstrdup(cache_dir);
    l->data_root = xstrdup(data_root ? data_root : "");
    l->check = check, l->batch = batch, l->mask_ratio = mask_ratio, l->seed = seed;
    if (manifest_load(&l->manifest, cache_dir, err) != 0) {
        free(l->dir), free(l->data_root), free(l);
        return -1;
    }
    if (!l->manifest.complete)
        mvd_warn("%s: the extraction has not finished; training on the %zu complete shard(s)", cache_dir,
                 l->manifest.num_shards);
    l->readers = xcalloc(l->manifest.num_shards + 1, sizeof(cache_shard_reader *));
    if (build_index(l, err) != 0) {
        loader_close(l);
        return -1;
    }
    if (l->n_videos == 0) {
        loader_close(l);
        return mvd_fail(err, "%s: the cache holds no clips", cache_dir);
    }
    alloc_batch(l);
    *out = l;
    return 0;
}

void loader_close(loader *l) {
    if (!l) return;
    for (size_t i = 0; l->readers && i < l->manifest.num_shards; i++)
        if (l->readers[i]) cache_shard_reader_close(l->readers[i]);
    for (int i = 0; i < LOADER_PROBE_CACHE; i++)
        if (l->probes[i].path) free(l->probes[i].path), video_info_free(&l->probes[i].info);
    manifest_free(&l->manifest);
    free(l->readers), free(l->clips), free(l->video_first), free(l->video_views), free(l->perm), free(l->frames);
    free(l->out.clips), free(l->out.masks), free(l->out.target_img), free(l->out.target_vid);
    free(l->dir), free(l->data_root), free(l);
}

const cache_meta *loader_meta(const loader *l) { return &l->manifest.meta; }
int64_t loader_num_videos(const loader *l) { return l->n_videos; }
int64_t loader_num_clips(const loader *l) { return l->n_clips; }
loader_batch *loader_batch_buffers(loader *l) { return &l->out; }

static void make_permutation(loader *l, int64_t epoch) {
    if (l->perm_epoch == epoch) return;
    rng_state r;
    rng_init(&r, rng_key(l->seed, (uint64_t)epoch, LOADER_PERM_TAG, 0));
    for (int64_t i = 0; i < l->n_videos; i++) l->perm[i] = i;
    for (int64_t i = l->n_videos - 1; i > 0; i--) {
        int64_t j = (int64_t)rng_below(&r, (uint64_t)i + 1), t = l->perm[i];
        l->perm[i] = l->perm[j], l->perm[j] = t;
    }
    l->perm_epoch = epoch;
}

static const video_info *probe_cached(loader *l, const char *path, mvd_err *err) {
    for (int i = 0; i < LOADER_PROBE_CACHE; i++)
        if (l->probes[i].path && strcmp(l->probes[i].path, path) == 0) return &l->probes[i].info;
    probe_entry *e = &l->probes[l->next_probe];
    l->next_probe = (l->next_probe + 1) % LOADER_PROBE_CACHE;
    if (e->path) free(e->path), video_info_free(&e->info), e->path = NULL;
    if (video_probe(path, &e->info, err) != 0) return NULL;
    e->path = xstrdup(path);
    return &e->info;
}

/* The probe path: a full decode pass (kept for the last few videos), the frame-count check, then the recorded
 * frame indices decoded from the start. */
static int decode_probed(loader *l, const char *path, const cache_clip *clip, clip_spec *spec, uint8_t *crops,
                         mvd_err *err) {
    const video_info *info = probe_cached(l, path, err);
    if (!info) return -1;
    if (info->num_frames != clip->video_frames) {
        if (l->check == PIXEL_CHECK_ERROR)
            return mvd_fail(err, "%s: now decodes to %lld frames, the cache was made from %lld (the video changed; "
                            "--pixel-check warn|off trains on it anyway)", path, (long long)info->num_frames,
                            (long long)clip->video_frames);
        if (l->check == PIXEL_CHECK_WARN)
            mvd_warn("%s: now decodes to %lld frames, the cache was made from %lld", path, (long long)info->num_frames,
                     (long long)clip->video_frames);
    }
    return clip_decode(path, info, spec, crops, err);
}

/* Resizes the crops into l->frames; sha gets their SHA-256 and *same whether it is the cache's. The hash is
 * taken whatever --pixel-check says: it is what lets the fast path below be trusted at all (a file whose
 * timestamps all moved would otherwise give other frames silently), and it costs little beside decoding. */
static int resize_and_hash(loader *l, const clip_spec *spec, const uint8_t *crops, char sha[65], int *same,
                           mvd_err *err) {
    if (clip_resize(spec, crops, (int)l->S, l->frames, err) != 0) return -1;
    clip_pixel_sha256(l->frames, (int)l->T, (int)l->S, sha);
    *same = strcmp(sha, spec->pixel_sha256) == 0;
    return 0;
}

/* Decodes the clip's recorded frames and crop into l->frames and checks their SHA-256. First by the recorded
 * timestamps, seeking, with no probe: the cost of the clip alone. The probe path runs when timestamps cannot
 * vouch for the frames (one was not recorded, the stream changed) or when those pixels differ from the cache,
 * so that a mismatch is always judged on the pixels video_read_frames gives, and reported as before. */
static int decode_checked(loader *l, const char *path, const cache_clip *clip, uint8_t *crops, mvd_err *err) {
    clip_spec spec = clip->spec;
    char sha[65];
    int same = 0;
    int rc = clip_decode_by_pts(path, &spec, crops, err);
    if (rc < 0) return -1;
    if (rc == 0) {
        if (resize_and_hash(l, &spec, crops, sha, &same, err) != 0) return -1;
        if (same) return 0;
    }
    rc = decode_probed(l, path, clip, &spec, crops, err);
    if (rc == 0) rc = resize_and_hash(l, &spec, crops, sha, &same, err);
    if (rc != 0 || same || l->check == PIXEL_CHECK_OFF) return rc;
    if (l->check == PIXEL_CHECK_ERROR)
        return mvd_fail(err, "%s (view %d): decoded pixels differ from the ones the teachers saw (SHA-256 %s, "
                        "cache %s); use --pixel-check warn|off to train anyway",
                        path, clip->spec.view, sha, clip->spec.pixel_sha256);
    mvd_warn("%s (view %d): decoded pixels differ from the cached clip's SHA-256", path, clip->spec.view);
    return 0;
}

/* Decodes and checks the clip's pixels and writes the normalised clip. */
static int load_pixels(loader *l, const cache_clip *clip, float *dst, mvd_err *err) {
    char *path = path_join(l->data_root, clip->path);
    uint8_t *crops = xmalloc(clip_crop_bytes(&clip->spec));
    int rc = decode_checked(l, path, clip, crops, err);
    if (rc == 0) clip_normalize(l->frames, (int)l->T, (int)l->S, dst);
    free(crops);
    free(path);
    return rc;
}

static int load_sample(loader *l, int64_t epoch, int64_t video, int64_t b, mvd_err *err) {
    const cache_meta *m = &l->manifest.meta;
    int view = (int)(epoch % m->views);
    if (view >= l->video_views[video]) view = (int)(epoch % l->video_views[video]);
    const clip_ref *ref = &l->clips[l->video_first[video] + view];
    cache_shard_reader *r;
    cache_clip clip;
    if (open_reader(l, ref->shard, &r, err) != 0 || cache_shard_reader_clip(r, ref->row, &clip, err) != 0) return -1;
    int rc = load_pixels(l, &clip, l->out.clips + b * 3 * l->T * l->S * l->S, err);
    cache_clip_free(&clip);
    if (rc == 0)
        rc = cache_shard_reader_targets(r, ref->row, l->out.target_img + b * l->N * l->Di,
                                        l->out.target_vid + b * l->N * l->Dv, err);
    uint64_t clip_id = (uint64_t)ref->video_index * (uint64_t)m->views + (uint64_t)ref->view;
    mask_tube(l->out.masks + b * l->N, l->gt, l->gh, l->gw, l->mask_ratio, mask_key(l->seed, (uint64_t)epoch, clip_id));
    return rc;
}

int loader_fill(loader *l, int64_t epoch, int64_t first, loader_batch *batch, mvd_err *err) {
    make_permutation(l, epoch);
    if (first < 0 || first + l->batch > l->n_videos)
        return mvd_fail(err, "batch [%lld, %lld) is outside the epoch's %lld videos", (long long)first,
                        (long long)(first + l->batch), (long long)l->n_videos);
    for (int64_t b = 0; b < l->batch; b++)
        if (load_sample(l, epoch, l->perm[first + b], b, err) != 0) return -1;
    l->out.B = l->batch;
    if (batch != &l->out) *batch = l->out;
    return 0;
}
