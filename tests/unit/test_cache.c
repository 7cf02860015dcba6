/* test_cache.c: fp16 conversion, the zstd HDF5 filter, target cache shards and the manifest.
 *
 * The fp16 conversion is checked against hand-derived bit patterns and against gcc's _Float16 on every fp16
 * value, every rounding boundary between neighbouring fp16 values and many random floats. Shards are written
 * with targets given by a formula of (teacher, clip, token, dim) that tests/py/test_cache_h5py.py recomputes
 * independently with numpy on the shard left in build/test-out/cache-f16/. Broken shards (wrong version, wrong
 * dims, incomplete, corrupted chunk) must be refused with a message saying why. h5dump reads the zstd data
 * through the plugin build/plugins/libh5zstd.so. The last test measures the compressed size of realistic
 * targets (1568 x 768). */
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache.h"
#include "cache_meta.h"
#include "half.h"
#include "manifest.h"
#include "rng.h"
#include "test.h"
#include "util.h"

#define OUT_ROOT "build/test-out"
#define F16_DIR OUT_ROOT "/cache-f16"
#define F32_DIR OUT_ROOT "/cache-f32"
#define BAD_DIR OUT_ROOT "/cache-bad"
#define NUM_CLIPS 5

/* ---- fp16 ---- */

static uint32_t bits_of(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float float_of(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void test_half_known_cases(void) {
    static const struct {
        float in;
        uint16_t out;
    } cases[] = {
        {0.0f, 0x0000},
        {-0.0f, 0x8000},
        {1.0f, 0x3c00},
        {-2.0f, 0xc000},
        {0.5f, 0x3800},
        {65504.0f, 0x7bff},
        {65519.99f, 0x7bff},
        {65520.0f, 0x7c00},
        {-65520.0f, 0xfc00},
        {1e10f, 0x7c00},
        {INFINITY, 0x7c00},
        {-INFINITY, 0xfc00},
        {0x1p-14f, 0x0400}, /* smallest normal */
        {0x1p-24f, 0x0001}, /* smallest subnormal */
        {0x1p-25f, 0x0000}, /* halfway to the smallest subnormal: ties to even (zero) */
        {-0x1p-25f, 0x8000},
        {0x1.000002p-25f, 0x0001},     /* just above that halfway point */
        {0x1.8p-24f, 0x0002},          /* 1.5 ulp: ties to even (2) */
        {0x1.4p-23f, 0x0002},          /* 2.5 ulp: ties to even (2) */
        {0x1p-14f - 0x1p-25f, 0x0400}, /* halfway between the largest subnormal and the smallest normal */
        {1.0f + 0x1p-11f, 0x3c00},     /* halfway, even below */
        {1.0f + 0x3p-11f, 0x3c02},     /* halfway, even above */
        {0x1.002002p+0f, 0x3c01},      /* just above halfway */
        {0.1f, 0x2e66},
        {1.0f / 3.0f, 0x3555},
        {-1000.0f / 7.0f, 0xd877},
        {3.14159265f, 0x4248},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t got = half_from_float(cases[i].in);
        CHECK(got == cases[i].out, "half_from_float(%a) = 0x%04x, expected 0x%04x", (double)cases[i].in, got,
              cases[i].out);
    }
    uint16_t nan = half_from_float(NAN);
    CHECK((nan & 0x7c00) == 0x7c00 && (nan & 0x3ff) != 0, "NaN became 0x%04x", nan);
    uint16_t nan_low = half_from_float(float_of(0x7f800001u)); /* payload only in bits fp16 drops */
    CHECK((nan_low & 0x7c00) == 0x7c00 && (nan_low & 0x3ff) != 0, "low-payload NaN became 0x%04x", nan_low);
    CHECK(half_to_float(0x3c00) == 1.0f, "0x3c00");
    CHECK(half_to_float(0x0001) == 0x1p-24f, "0x0001");
    CHECK(half_to_float(0x03ff) == 0x3ffp-24f, "0x03ff");
    CHECK(half_to_float(0x7bff) == 65504.0f, "0x7bff");
    CHECK(isinf(half_to_float(0xfc00)) && half_to_float(0xfc00) < 0, "0xfc00");
    CHECK(isnan(half_to_float(0x7e00)), "0x7e00");
    CHECK(signbit(half_to_float(0x8000)) && half_to_float(0x8000) == 0.0f, "0x8000");
}

#ifdef __FLT16_MAX__
static uint16_t ref_from_float(float f) {
    _Float16 h = (_Float16)f;
    uint16_t u;
    memcpy(&u, &h, 2);
    return u;
}

static float ref_to_float(uint16_t u) {
    _Float16 h;
    memcpy(&h, &u, 2);
    return (float)h;
}

/* 0 when both conversions agree (NaN: both NaN). */
static int compare_one(float x, long *mismatches) {
    uint16_t a = half_from_float(x), b = ref_from_float(x);
    int both_nan = (a & 0x7fff) > 0x7c00 && (b & 0x7fff) > 0x7c00;
    if (a == b || both_nan) return 0;
    if ((*mismatches)++ < 5) test_report("mismatch at %a: 0x%04x vs _Float16 0x%04x", (double)x, a, b);
    return 1;
}

static void test_half_against_float16(void) {
    long mismatches = 0, checked = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        float a = half_to_float((uint16_t)h), b = ref_to_float((uint16_t)h);
        if (isnan(b) ? !isnan(a) : bits_of(a) != bits_of(b)) mismatches++;
        if (isnan(a)) continue;
        /* the value itself, the midpoint to the next fp16 value and its neighbouring floats, both signs */
        float next = h == 0x7bff ? 65536.0f : half_to_float((uint16_t)(h + 1));
        float mid = (float)(((double)a + (double)next) / 2.0);
        float probes[5] = {a, mid, nextafterf(mid, -INFINITY), nextafterf(mid, INFINITY), nextafterf(a, 0.0f)};
        for (int p = 0; p < 5 && h < 0x7c00; p++, checked += 2)
            compare_one(probes[p], &mismatches), compare_one(-probes[p], &mismatches);
    }
    rng_state r;
    rng_init(&r, 12345);
    for (int i = 0; i < 20000000; i++, checked++) compare_one(float_of((uint32_t)rng_u64(&r)), &mismatches);
    test_report("%ld float->half values and all 65536 half->float values compared with _Float16", checked);
    CHECK(mismatches == 0, "%ld mismatches with _Float16", mismatches);
}
#else
/* Without the independent reference the conversion is unproven here: a failure, not a skip. */
static void test_half_against_float16(void) { CHECK(0, "this compiler has no _Float16 to check fp16 conversion against"); }
#endif

/* ---- test shard contents (tests/py/test_cache_h5py.py recomputes the same) ---- */

static float target_value(int teacher, int64_t clip, int64_t token, int64_t d) {
    int64_t k = (clip * 131 + token * 31 + d * 7 + teacher * 17) % 2001 - 1000;
    return teacher == 0 ? (float)k / 7.0f : (float)k / 70000.0f;
}

/* A few special values in image clip 1, token 0: overflow to inf, underflow to -0, largest finite, a tie. */
static const float special_values[4] = {1e5f, -1e-8f, 65519.0f, 0x1.8p-24f};

static void fill_targets(int64_t clip, int tokens, int dim_image, int dim_video, float *image, float *video) {
    for (int t = 0; t < tokens; t++) {
        for (int d = 0; d < dim_image; d++) image[(size_t)t * dim_image + d] = target_value(0, clip, t, d);
        for (int d = 0; d < dim_video; d++) video[(size_t)t * dim_video + d] = target_value(1, clip, t, d);
    }
    if (clip == 1) memcpy(image, special_values, sizeof special_values);
}

static void test_meta(cache_meta *m, const char *dtype) {
    cache_meta_init(m);
    snprintf(m->ffmpeg_version, sizeof m->ffmpeg_version, "n5.1.6");
    m->num_frames = 4, m->frame_stride = 4, m->input_size = 32, m->image_input_size = 28;
    m->seed = 0xFEDCBA9876543210ull;
    m->views = 2;
    cache_teacher *img = &m->image, *vid = &m->video;
    img->dim = 24, img->depth = 2, img->heads = 2, img->mlp_hidden = 96, img->patch = 7, img->tubelet = 1;
    img->input_size = 28, img->grid_t = 2, img->grid_h = 4, img->grid_w = 4, img->feature_dim = 24;
    sha256_hex("image weights", 13, img->weights_sha256);
    snprintf(img->provenance, sizeof img->provenance, "test weights \"quoted\", licence: none");
    vid->dim = 16, vid->depth = 2, vid->heads = 2, vid->mlp_hidden = 64, vid->patch = 8, vid->tubelet = 2;
    vid->input_size = 32, vid->grid_t = 2, vid->grid_h = 4, vid->grid_w = 4, vid->feature_dim = 16;
    vid->random_init = 1; /* no weights file: empty hash */
    snprintf(m->storage_dtype, sizeof m->storage_dtype, "%s", dtype);
    m->shard_size = 8;
    m->tokens = 32;
    snprintf(m->list_path, sizeof m->list_path, "build/test-out/list.txt");
    sha256_hex("list", 4, m->list_sha256);
}

static void make_clip(int64_t c, cache_clip *clip, char *path, char *label) {
    memset(clip, 0, sizeof *clip);
    clip_spec *s = &clip->spec;
    s->video_index = c / 2, s->view = (int)(c % 2), s->num_frames = 4, s->start = c * 5;
    for (int f = 0; f < 4; f++) {
        s->frame_index[f] = s->start + 4 * f;
        s->pts[f] = 1000 + s->frame_index[f] * 512;
    }
    s->time_base_num = 1, s->time_base_den = 12800, s->repeated = c == 3 ? 1 : 0;
    s->crop = (crop_box){(int)c, (int)(2 * c), (int)(100 + c), (int)(90 + c)};
    char seed[32];
    snprintf(seed, sizeof seed, "clip %lld", (long long)c);
    sha256_hex(seed, strlen(seed), s->pixel_sha256);
    sprintf(path, "videos/clip %lld \xc3\xa9.mp4", (long long)c);
    sprintf(label, "label_%lld", (long long)c);
    clip->path = path, clip->label = label, clip->video_frames = 300 + c;
}

static void remove_shards(const char *dir) {
    char path[512];
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/shard-%05d.h5", dir, i);
        unlink(path);
        snprintf(path, sizeof path, "%s/shard-%05d.h5.tmp", dir, i);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    unlink(path);
}

/* Writes NUM_CLIPS clips into <dir>/shard-00000.h5, checking the final name appears only at finish. */
static int write_test_shard(const char *dir, const cache_meta *m, cache_shard_info *info) {
    mvd_err err = {{0}};
    remove_shards(dir);
    if (mkdir_p(dir, &err)) {
        CHECK(0, "%s", err.msg);
        return -1;
    }
    char final[512], tmp[512];
    snprintf(final, sizeof final, "%s/shard-00000.h5", dir);
    snprintf(tmp, sizeof tmp, "%s/shard-00000.h5.tmp", dir);
    cache_shard_writer *w;
    if (cache_shard_writer_open(&w, dir, 0, m, &err)) {
        CHECK(0, "open: %s", err.msg);
        return -1;
    }
    float *image = xmalloc((size_t)m->tokens * m->image.feature_dim * 4);
    float *video = xmalloc((size_t)m->tokens * m->video.feature_dim * 4);
    int rc = 0;
    for (int64_t c = 0; c < NUM_CLIPS && rc == 0; c++) {
        cache_clip clip;
        char path[64], label[32];
        make_clip(c, &clip, path, label);
        fill_targets(c, m->tokens, m->image.feature_dim, m->video.feature_dim, image, video);
        rc = cache_shard_writer_append(w, &clip, image, video, &err);
        CHECK(rc == 0, "append %lld: %s", (long long)c, err.msg);
        CHECK(!file_exists(final) && file_exists(tmp), "while writing, only the .tmp name may exist");
    }
    free(image);
    free(video);
    if (rc) {
        cache_shard_writer_abort(w);
        return -1;
    }
    CHECK(cache_shard_writer_clips(w) == NUM_CLIPS, "clip count");
    rc = cache_shard_writer_finish(w, info, &err);
    CHECK(rc == 0, "finish: %s", err.msg);
    CHECK(file_exists(final) && !file_exists(tmp), "after finish, only the final name may exist");
    return rc;
}

static void check_clip_equal(const cache_clip *got, int64_t c) {
    cache_clip want;
    char path[64], label[32];
    make_clip(c, &want, path, label);
    const clip_spec *a = &got->spec, *b = &want.spec;
    CHECK(a->video_index == b->video_index && a->view == b->view && a->num_frames == b->num_frames &&
              a->start == b->start && a->repeated == b->repeated,
          "clip %lld: scalar fields differ", (long long)c);
    CHECK(memcmp(a->frame_index, b->frame_index, 4 * sizeof(int64_t)) == 0 &&
              memcmp(a->pts, b->pts, 4 * sizeof(int64_t)) == 0,
          "clip %lld: frame indices or pts differ", (long long)c);
    CHECK(a->time_base_num == 1 && a->time_base_den == 12800, "clip %lld: time base", (long long)c);
    CHECK(memcmp(&a->crop, &b->crop, sizeof a->crop) == 0, "clip %lld: crop differs", (long long)c);
    CHECK(strcmp(a->pixel_sha256, b->pixel_sha256) == 0, "clip %lld: pixel_sha256 differs", (long long)c);
    CHECK(got->path && strcmp(got->path, path) == 0, "clip %lld: path '%s'", (long long)c, got->path);
    CHECK(got->label && strcmp(got->label, label) == 0, "clip %lld: label", (long long)c);
    CHECK(got->video_frames == 300 + c, "clip %lld: video_frames", (long long)c);
}

/* 1 when got equals want as stored (fp16 rounding, or exact for fp32); NaN equals NaN. */
static int stored_equal(float got, float want, int fp16) {
    float w = fp16 ? half_to_float(half_from_float(want)) : want;
    return bits_of(got) == bits_of(w) || (isnan(got) && isnan(w));
}

static void check_targets(cache_shard_reader *r, const cache_meta *m, int fp16) {
    size_t ni = (size_t)m->tokens * m->image.feature_dim, nv = (size_t)m->tokens * m->video.feature_dim;
    float *image = xmalloc(ni * 4), *video = xmalloc(nv * 4), *want_i = xmalloc(ni * 4), *want_v = xmalloc(nv * 4);
    long bad = 0;
    for (int64_t c = 0; c < NUM_CLIPS; c++) {
        mvd_err err = {{0}};
        int rc = cache_shard_reader_targets(r, c, image, video, &err);
        CHECK(rc == 0, "targets %lld: %s", (long long)c, err.msg);
        if (rc) break;
        fill_targets(c, m->tokens, m->image.feature_dim, m->video.feature_dim, want_i, want_v);
        for (size_t i = 0; i < ni; i++) bad += !stored_equal(image[i], want_i[i], fp16);
        for (size_t i = 0; i < nv; i++) bad += !stored_equal(video[i], want_v[i], fp16);
    }
    CHECK(bad == 0, "%ld target values differ from the formula", bad);
    if (fp16) {
        CHECK(half_from_float(special_values[0]) == 0x7c00, "1e5 should be stored as inf");
    }
    free(image), free(video), free(want_i), free(want_v);
}

/* The bulk index equals the per-clip reads, and the manifest-entry check accepts the true entry and names what
 * differs in altered ones. */
static void check_index(cache_shard_reader *r, const cache_shard_info *info) {
    int64_t video_index[NUM_CLIPS];
    int32_t view[NUM_CLIPS];
    mvd_err err = {{0}};
    REQUIRE(cache_shard_reader_index(r, video_index, view, &err) == 0, "index: %s", err.msg);
    for (int64_t c = 0; c < NUM_CLIPS; c++) {
        cache_clip want;
        char path[64], label[32];
        make_clip(c, &want, path, label);
        CHECK(video_index[c] == want.spec.video_index && view[c] == want.spec.view, "index of clip %lld",
              (long long)c);
    }
    CHECK(cache_shard_reader_check_entry(r, info, &err) == 0, "true entry refused: %s", err.msg);
    cache_shard_info more = *info, later = *info;
    more.clips++;
    later.last_video_index += 3;
    CHECK(cache_shard_reader_check_entry(r, &more, &err) != 0 && strstr(err.msg, "the manifest says"),
          "a wrong clip count was accepted: %s", err.msg);
    CHECK(cache_shard_reader_check_entry(r, &later, &err) != 0 && strstr(err.msg, "holds videos"),
          "a wrong video range was accepted: %s", err.msg);
}

static void roundtrip(const char *dir, const char *dtype) {
    cache_meta m;
    test_meta(&m, dtype);
    cache_shard_info info;
    if (write_test_shard(dir, &m, &info)) return;
    CHECK(strcmp(info.file, "shard-00000.h5") == 0 && info.clips == NUM_CLIPS && info.first_video_index == 0 &&
              info.last_video_index == (NUM_CLIPS - 1) / 2,
          "shard info: %s %lld %lld %lld", info.file, (long long)info.clips, (long long)info.first_video_index,
          (long long)info.last_video_index);
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, info.file);
    mvd_err err = {{0}};
    cache_shard_reader *r;
    REQUIRE(cache_shard_reader_open(&r, path, &err) == 0, "open: %s", err.msg);
    const cache_meta *got = cache_shard_reader_meta(r);
    CHECK(cache_meta_same_settings(got, &m, &err) == 0, "metadata: %s", err.msg);
    CHECK(memcmp(got, &m, sizeof m) == 0, "metadata differs (including the uncompared fields)");
    CHECK(cache_shard_reader_clips(r) == NUM_CLIPS, "clips %lld", (long long)cache_shard_reader_clips(r));
    for (int64_t c = 0; c < NUM_CLIPS; c++) {
        cache_clip clip;
        int rc = cache_shard_reader_clip(r, c, &clip, &err);
        CHECK(rc == 0, "clip %lld: %s", (long long)c, err.msg);
        if (rc == 0) check_clip_equal(&clip, c);
        cache_clip_free(&clip);
    }
    cache_clip clip;
    CHECK(cache_shard_reader_clip(r, NUM_CLIPS, &clip, &err) != 0, "clip past the end accepted");
    check_index(r, &info);
    check_targets(r, &m, strcmp(dtype, CACHE_DTYPE_F16) == 0);
    cache_shard_reader_close(r);
}

static void test_shard_roundtrip_f16(void) { roundtrip(F16_DIR, CACHE_DTYPE_F16); }
static void test_shard_roundtrip_f32(void) { roundtrip(F32_DIR, CACHE_DTYPE_F32); }

static void test_writer_refuses_and_aborts(void) {
    cache_meta m;
    test_meta(&m, CACHE_DTYPE_F16);
    m.shard_size = 1;
    mvd_err err = {{0}};
    REQUIRE(mkdir_p(BAD_DIR, &err) == 0, "%s", err.msg);
    remove_shards(BAD_DIR);
    cache_shard_writer *w;
    REQUIRE(cache_shard_writer_open(&w, BAD_DIR, 1, &m, &err) == 0, "open: %s", err.msg);
    float *image = xcalloc((size_t)m.tokens * m.image.feature_dim, 4);
    float *video = xcalloc((size_t)m.tokens * m.video.feature_dim, 4);
    cache_clip clip;
    char path[64], label[32];
    make_clip(0, &clip, path, label);
    clip.spec.num_frames = 3;
    CHECK(cache_shard_writer_append(w, &clip, image, video, &err) != 0 && strstr(err.msg, "frames"),
          "a clip with the wrong frame count was accepted (%s)", err.msg);
    clip.spec.num_frames = 4;
    CHECK(cache_shard_writer_append(w, &clip, image, video, &err) == 0, "append: %s", err.msg);
    CHECK(cache_shard_writer_append(w, &clip, image, video, &err) != 0 && strstr(err.msg, "full"),
          "a full shard accepted another clip (%s)", err.msg);
    cache_shard_writer_abort(w);
    CHECK(!file_exists(BAD_DIR "/shard-00001.h5") && !file_exists(BAD_DIR "/shard-00001.h5.tmp"),
          "abort left a file behind");
    m.image.grid_t = 3;
    CHECK(cache_shard_writer_open(&w, BAD_DIR, 1, &m, &err) != 0 && strstr(err.msg, "grid"),
          "inconsistent metadata accepted (%s)", err.msg);
    free(image);
    free(video);
}

/* ---- refusing broken shards ---- */

static int copy_file(const char *from, const char *to) {
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    char buf[65536];
    size_t n;
    int ok = in && out;
    while (ok && (n = fread(buf, 1, sizeof buf, in)) > 0) ok = fwrite(buf, 1, n, out) == n;
    if (in) fclose(in);
    if (out && fclose(out) != 0) ok = 0;
    return ok ? 0 : -1;
}

static int set_int_attr(const char *path, const char *name, int64_t value) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t a = f >= 0 ? H5Aopen(f, name, H5P_DEFAULT) : -1;
    int ok = a >= 0 && H5Awrite(a, H5T_NATIVE_INT64, &value) >= 0;
    if (a >= 0) H5Aclose(a);
    if (f >= 0 && H5Fclose(f) < 0) ok = 0;
    return ok ? 0 : -1;
}

/* Opening `path` must fail with a message containing `expect`. */
static void expect_refused(const char *path, const char *expect) {
    mvd_err err = {{0}};
    cache_shard_reader *r = NULL;
    int rc = cache_shard_reader_open(&r, path, &err);
    CHECK(rc != 0 && strstr(err.msg, expect) && strstr(err.msg, path), "%s: expected refusal with '%s', got: %s", path,
          expect, rc ? err.msg : "accepted");
    if (rc == 0)
        cache_shard_reader_close(r);
    else
        test_report("refused: %s", err.msg);
}

/* Overwrites the first bytes of clip `clip`'s chunk of targets/video with garbage. */
static int corrupt_chunk(const char *path, int clip) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t ds = f >= 0 ? H5Dopen2(f, "targets/video", H5P_DEFAULT) : -1;
    hsize_t offset[3] = {(hsize_t)clip, 0, 0};
    unsigned mask = 0;
    haddr_t addr = HADDR_UNDEF;
    hsize_t size = 0;
    int ok = ds >= 0 && H5Dget_chunk_info_by_coord(ds, offset, &mask, &addr, &size) >= 0 && addr != HADDR_UNDEF;
    if (ds >= 0) H5Dclose(ds);
    if (f >= 0) H5Fclose(f);
    int fd = ok ? open(path, O_WRONLY) : -1;
    ok = fd >= 0 && pwrite(fd, "garbage!", 8, (off_t)addr) == 8;
    if (fd >= 0) close(fd);
    return ok ? 0 : -1;
}

static void test_reader_refuses_broken_shards(void) {
    const char *good = F16_DIR "/shard-00000.h5";
    REQUIRE(file_exists(good), "%s missing (test_shard_roundtrip_f16 failed?)", good);
    const char *version = BAD_DIR "/version.h5", *dims = BAD_DIR "/dims.h5", *incomplete = BAD_DIR "/incomplete.h5";
    const char *text = BAD_DIR "/text.h5", *chunk = BAD_DIR "/chunk.h5";
    mvd_err err = {{0}};
    REQUIRE(mkdir_p(BAD_DIR, &err) == 0, "%s", err.msg);
    REQUIRE(copy_file(good, version) == 0 && set_int_attr(version, "format_version", 2) == 0, "prepare %s", version);
    expect_refused(version, "version 2");
    REQUIRE(copy_file(good, dims) == 0 && set_int_attr(dims, "image_teacher.feature_dim", 25) == 0, "prepare %s", dims);
    expect_refused(dims, "targets/image has shape 5 x 32 x 24, expected 5 x 32 x 25");
    REQUIRE(copy_file(good, incomplete) == 0, "copy");
    hid_t f = H5Fopen(incomplete, H5F_ACC_RDWR, H5P_DEFAULT);
    REQUIRE(f >= 0 && H5Adelete(f, "num_clips") >= 0 && H5Fclose(f) >= 0, "prepare %s", incomplete);
    expect_refused(incomplete, "num_clips is missing");
    REQUIRE(write_file_atomic(text, "not hdf5\n", 9, &err) == 0, "%s", err.msg);
    expect_refused(text, "cannot open as HDF5");

    REQUIRE(copy_file(good, chunk) == 0 && corrupt_chunk(chunk, 2) == 0, "prepare %s", chunk);
    cache_shard_reader *r;
    REQUIRE(cache_shard_reader_open(&r, chunk, &err) == 0, "open: %s", err.msg);
    float *image = xmalloc(32 * 24 * 4), *video = xmalloc(32 * 16 * 4);
    CHECK(cache_shard_reader_targets(r, 1, image, video, &err) == 0, "an intact chunk: %s", err.msg);
    int rc = cache_shard_reader_targets(r, 2, image, video, &err);
    CHECK(rc != 0 && strstr(err.msg, "zstd") && strstr(err.msg, "clip 2"), "corrupted chunk: %s",
          rc ? err.msg : "accepted");
    if (rc) test_report("refused: %s", err.msg);
    cache_shard_reader_close(r);
    free(image);
    free(video);
}

/* ---- settings ---- */

static void test_settings_mismatch_names_field(void) {
    cache_meta a, b;
    test_meta(&a, CACHE_DTYPE_F16);
    mvd_err err = {{0}};
    CHECK(cache_meta_validate(&a, &err) == 0, "test metadata invalid: %s", err.msg);
    b = a;
    snprintf(b.list_path, sizeof b.list_path, "/elsewhere/list.txt");
    snprintf(b.image.provenance, sizeof b.image.provenance, "another description");
    CHECK(cache_meta_same_settings(&a, &b, &err) == 0, "list path and provenance should not count: %s", err.msg);
    b = a;
    b.video.weights_sha256[0] = 'f', b.video.weights_sha256[1] = '\0', b.video.random_init = 0;
    CHECK(cache_meta_same_settings(&a, &b, &err) != 0 && strstr(err.msg, "video_teacher.weights_sha256"), "weights: %s",
          err.msg);
    b = a;
    b.seed = 1;
    CHECK(cache_meta_same_settings(&a, &b, &err) != 0 && strstr(err.msg, "at seed:") &&
              strstr(err.msg, "18364758544493064720"),
          "seed: %s", err.msg);
    test_report("%s", err.msg);
    b = a;
    b.std[2] = 0.5;
    CHECK(cache_meta_same_settings(&a, &b, &err) != 0 && strstr(err.msg, "at std:"), "std: %s", err.msg);
    b = a;
    snprintf(b.storage_dtype, sizeof b.storage_dtype, "float32");
    CHECK(cache_meta_same_settings(&a, &b, &err) != 0 && strstr(err.msg, "storage_dtype"), "dtype: %s", err.msg);

    cache_geometry g = {4, 32, 2, 4, 4, 24, 16};
    CHECK(cache_meta_check_geometry(&a, &g, &err) == 0, "geometry: %s", err.msg);
    g.video_feature_dim = 0; /* any */
    CHECK(cache_meta_check_geometry(&a, &g, &err) == 0, "geometry with 'any': %s", err.msg);
    g.grid_h = 7;
    CHECK(cache_meta_check_geometry(&a, &g, &err) != 0 && strstr(err.msg, "image_teacher.grid_h is 4, expected 7"),
          "geometry: %s", err.msg);

    cJSON *json = cache_meta_to_json(&a);
    cache_meta back;
    CHECK(json && cache_meta_from_json(json, &back, &err) == 0 && memcmp(&a, &back, sizeof a) == 0,
          "JSON round trip: %s", err.msg);
    cJSON_Delete(json);
}

/* ---- manifest ---- */

static int shard_info_equal(const cache_shard_info *a, const cache_shard_info *b) {
    return strcmp(a->file, b->file) == 0 && a->clips == b->clips && a->first_video_index == b->first_video_index &&
           a->last_video_index == b->last_video_index && strcmp(a->sha256, b->sha256) == 0;
}

static void test_manifest_roundtrip(void) {
    const char *dir = OUT_ROOT "/cache-manifest";
    mvd_err err = {{0}};
    REQUIRE(mkdir_p(dir, &err) == 0, "%s", err.msg);
    remove_shards(dir);
    cache_meta meta;
    test_meta(&meta, CACHE_DTYPE_F16);
    cache_manifest m;
    manifest_init(&m, dir, &meta);
    CHECK(!manifest_exists(dir), "manifest should not exist yet");
    CHECK(manifest_save(&m, &err) == 0 && manifest_exists(dir), "save: %s", err.msg);
    cache_shard_info s0 = {"shard-00000.h5", 8, 0, 3, ""}, s1 = {"shard-00001.h5", 5, 4, 6, ""};
    sha256_hex("shard", 5, s1.sha256);
    CHECK(manifest_add_shard(&m, &s0, &err) == 0 && manifest_add_shard(&m, &s1, &err) == 0, "add: %s", err.msg);
    CHECK(manifest_add_shard(&m, &s1, &err) != 0 && strstr(err.msg, "already listed"), "duplicate: %s", err.msg);
    cache_shard_info bad = s0;
    snprintf(bad.file, sizeof bad.file, "../x.h5");
    CHECK(manifest_add_shard(&m, &bad, &err) != 0, "a path outside the folder was accepted");
    const char *reason = "moov atom not found \"quoted\"\nsecond line \xe2\x9c\x93";
    CHECK(manifest_add_failure(&m, 7, "videos/broken file.mp4", reason, &err) == 0, "failure: %s", err.msg);
    CHECK(manifest_set_complete(&m, 1, &err) == 0, "complete: %s", err.msg);

    cache_manifest back;
    REQUIRE(manifest_load(&back, dir, &err) == 0, "load: %s", err.msg);
    CHECK(memcmp(&back.meta, &meta, sizeof meta) == 0, "metadata differs after load");
    CHECK(back.num_shards == 2 && shard_info_equal(&back.shards[0], &s0) && shard_info_equal(&back.shards[1], &s1),
          "shards differ after load");
    CHECK(back.num_failures == 1 && back.failures[0].video_index == 7 &&
              strcmp(back.failures[0].path, "videos/broken file.mp4") == 0 &&
              strcmp(back.failures[0].reason, reason) == 0,
          "failures differ after load");
    CHECK(back.complete == 1, "complete flag lost");
    CHECK(manifest_find_shard(&back, "shard-00001.h5") && !manifest_find_shard(&back, "shard-00002.h5"), "find");
    CHECK(manifest_total_clips(&back) == 13, "total clips");
    cache_meta run = meta;
    run.zstd_level = 9;
    CHECK(cache_meta_same_settings(&back.meta, &run, &err) != 0 && strstr(err.msg, "zstd_level"),
          "resume with other settings: %s", err.msg);
    manifest_free(&back);
    manifest_free(&m);

    char path[512];
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    REQUIRE(write_file_atomic(path, "{\"format\": \"mvd-target-cache-manifest\", \"format_version\": 2}", 60, &err) ==
                0,
            "%s", err.msg);
    CHECK(manifest_load(&back, dir, &err) != 0 && strstr(err.msg, "version 2"), "future version: %s", err.msg);
    REQUIRE(write_file_atomic(path, "{\"format\": ", 11, &err) == 0, "%s", err.msg);
    CHECK(manifest_load(&back, dir, &err) != 0 && strstr(err.msg, "not valid JSON"), "bad JSON: %s", err.msg);
}

/* ---- h5dump through the plugin ---- */

static int run_h5dump(const char *plugin_dir, const char *file, char *out, size_t cap) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "HDF5_PLUGIN_PATH=%s h5dump -m %%.9g -d /targets/video -s 1,0,0 -c 1,1,4 -w 0 %s 2>&1",
             plugin_dir, file);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    return pclose(p);
}

static void test_h5dump_reads_zstd(void) {
    const char *plugin = "build/plugins/libh5zstd.so", *file = F16_DIR "/shard-00000.h5";
    REQUIRE(file_exists(plugin), "%s missing: build it with make", plugin);
    REQUIRE(file_exists(file), "%s missing", file);
    static char out[65536];
    int status = run_h5dump("build/plugins", file, out, sizeof out);
    const char *data = strstr(out, "(1,0,0):");
    CHECK(status == 0 && data, "h5dump failed (status %d):\n%s", status, out);
    if (!data) return;
    data += strlen("(1,0,0):");
    for (int d = 0; d < 4; d++) {
        char *end;
        double v = strtod(data, &end);
        float want = half_to_float(half_from_float(target_value(1, 1, 0, d)));
        CHECK(end != data && (float)v == want, "h5dump value %d: %.9g, expected %.9g", d, v, (double)want);
        data = end + 1;
    }
    status = run_h5dump("/nonexistent", file, out, sizeof out);
    CHECK(status != 0 || !strstr(out, "(1,0,0):"),
          "h5dump read zstd data without the plugin: the filter is not applied");
}

/* ---- size of realistic targets ---- */

/* Gaussian activations with a per-channel scale (log-normal, a few channels 10x larger), like a ViT's. */
static void realistic_target(rng_state *r, const float *scale, float *out, int tokens, int dim) {
    for (int t = 0; t < tokens; t++)
        for (int d = 0; d < dim; d++) out[(size_t)t * dim + d] = (float)rng_normal(r) * scale[d];
}

static void measure_dtype(const char *dtype, const float *scale) {
    char dir[256];
    snprintf(dir, sizeof dir, OUT_ROOT "/cache-size-%s", dtype);
    cache_meta m;
    cache_meta_init(&m); /* 1568 tokens, 768 + 768 dims, zstd 3 */
    snprintf(m.storage_dtype, sizeof m.storage_dtype, "%s", dtype);
    sha256_hex("list", 4, m.list_sha256);
    sha256_hex("img", 3, m.image.weights_sha256);
    sha256_hex("vid", 3, m.video.weights_sha256);
    m.num_frames = 4; /* the clip rows do not matter here */
    const int clips = 4;
    size_t n = (size_t)m.tokens * 768;
    float *image = xmalloc(n * 4), *video = xmalloc(n * 4);
    rng_state r;
    rng_init(&r, 99);
    mvd_err err = {{0}};
    remove_shards(dir);
    REQUIRE(mkdir_p(dir, &err) == 0, "%s", err.msg);
    cache_shard_writer *w;
    REQUIRE(cache_shard_writer_open(&w, dir, 0, &m, &err) == 0, "%s", err.msg);
    double seconds = 0;
    for (int c = 0; c < clips; c++) {
        cache_clip clip;
        char path[64], label[32];
        make_clip(c, &clip, path, label);
        clip.spec.view = 0;
        realistic_target(&r, scale, image, m.tokens, 768);
        realistic_target(&r, scale + 768, video, m.tokens, 768);
        double t0 = now_seconds();
        int rc = cache_shard_writer_append(w, &clip, image, video, &err);
        seconds += now_seconds() - t0;
        CHECK(rc == 0, "%s", err.msg);
        if (rc) break;
    }
    cache_shard_info info;
    REQUIRE(cache_shard_writer_finish(w, &info, &err) == 0, "%s", err.msg);
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, info.file);
    cache_shard_reader *rd;
    REQUIRE(cache_shard_reader_open(&rd, path, &err) == 0, "%s", err.msg);
    uint64_t bi, bv;
    cache_shard_reader_storage_bytes(rd, &bi, &bv);
    float *back = xmalloc(n * 4);
    CHECK(cache_shard_reader_targets(rd, clips - 1, NULL, back, &err) == 0, "%s", err.msg);
    long bad = 0;
    for (size_t i = 0; i < n; i++) bad += !stored_equal(back[i], video[i], strcmp(dtype, CACHE_DTYPE_F16) == 0);
    CHECK(bad == 0, "%ld values differ after the round trip", bad);
    cache_shard_reader_close(rd);
    double raw = (double)n * (double)cache_meta_element_size(&m);
    test_report("%s, 1568 x 768, zstd 3: image %.0f B/clip, video %.0f B/clip (raw %.0f, ratio %.3f); write %.1f MB/s",
                dtype, (double)bi / clips, (double)bv / clips, raw, raw * clips / (double)bi,
                2 * raw * clips / seconds / 1e6);
    remove_shards(dir);
    free(image), free(video), free(back);
}

static void test_measure_realistic_size(void) {
    float *scale = xmalloc(2 * 768 * sizeof(float));
    rng_state r;
    rng_init(&r, 7);
    for (int d = 0; d < 2 * 768; d++)
        scale[d] = (float)exp(0.5 * rng_normal(&r)) * (rng_below(&r, 100) < 2 ? 10.0f : 1.0f);
    measure_dtype(CACHE_DTYPE_F16, scale);
    measure_dtype(CACHE_DTYPE_F32, scale);
    free(scale);
}

int main(void) {
    mvd_log_quiet = 1;
    RUN(test_half_known_cases);
    RUN(test_half_against_float16);
    RUN(test_shard_roundtrip_f16);
    RUN(test_shard_roundtrip_f32);
    RUN(test_writer_refuses_and_aborts);
    RUN(test_reader_refuses_broken_shards);
    RUN(test_settings_mismatch_names_field);
    RUN(test_manifest_roundtrip);
    RUN(test_h5dump_reads_zstd);
    RUN(test_measure_realistic_size);
    return test_summary();
}
