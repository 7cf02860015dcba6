/* h5zstd.c: the Zstandard HDF5 filter, id 32015 (see h5zstd.h for the on-disk contract).
 *
 * Buffers handed to and from HDF5 filters belong to the library, so they are allocated and freed with
 * H5allocate_memory / H5free_memory. A failing filter pushes a message onto HDF5's error stack (so callers can
 * report why) and returns 0, which HDF5 turns into a failed read or write. */
#include "h5zstd.h"

#include <zstd.h>

#ifdef MVD_H5ZSTD_PLUGIN
#include <H5PLextern.h>
#endif

static void push_error(const char *func, int line, const char *msg) {
    H5Epush2(H5E_DEFAULT, __FILE__, func, (unsigned)line, H5E_ERR_CLS, H5E_PLINE, H5E_CANTFILTER, "%s", msg);
}

#define ZSTD_FILTER_FAIL(msg) (push_error(__func__, __LINE__, (msg)), (size_t)0)

static int level_from_cd_values(size_t cd_nelmts, const unsigned int cd_values[]) {
    if (cd_nelmts < 1) return ZSTD_CLEVEL_DEFAULT;
    int level = (int)(int32_t)cd_values[0];
    if (level < ZSTD_minCLevel()) level = ZSTD_minCLevel();
    if (level > ZSTD_maxCLevel()) level = ZSTD_maxCLevel();
    return level;
}

static size_t zstd_compress_chunk(int level, size_t nbytes, size_t *buf_size, void **buf) {
    size_t bound = ZSTD_compressBound(nbytes);
    void *out = H5allocate_memory(bound, 0);
    if (!out) return ZSTD_FILTER_FAIL("zstd: out of memory for the compressed chunk");
    /* The one-shot API writes the content size into the frame header, which decoders rely on. */
    size_t n = ZSTD_compress(out, bound, *buf, nbytes, level);
    if (ZSTD_isError(n)) {
        H5free_memory(out);
        return ZSTD_FILTER_FAIL(ZSTD_getErrorName(n));
    }
    H5free_memory(*buf);
    *buf = out;
    *buf_size = bound;
    return n;
}

static size_t zstd_decompress_chunk(size_t nbytes, size_t *buf_size, void **buf) {
    unsigned long long size = ZSTD_getFrameContentSize(*buf, nbytes);
    if (size == ZSTD_CONTENTSIZE_ERROR) return ZSTD_FILTER_FAIL("zstd: chunk is not a zstd frame");
    if (size == ZSTD_CONTENTSIZE_UNKNOWN) return ZSTD_FILTER_FAIL("zstd: frame does not record its content size");
    if (size > H5ZSTD_MAX_CHUNK_BYTES) return ZSTD_FILTER_FAIL("zstd: frame claims an absurd content size");
    size_t frame_bytes = ZSTD_findFrameCompressedSize(*buf, nbytes);
    if (ZSTD_isError(frame_bytes) || frame_bytes != nbytes)
        return ZSTD_FILTER_FAIL("zstd: chunk is not exactly one complete zstd frame");
    void *out = H5allocate_memory(size > 0 ? (size_t)size : 1, 0);
    if (!out) return ZSTD_FILTER_FAIL("zstd: out of memory for the decompressed chunk");
    size_t n = ZSTD_decompress(out, (size_t)size, *buf, nbytes);
    if (ZSTD_isError(n) || n != size) {
        H5free_memory(out);
        return ZSTD_FILTER_FAIL(ZSTD_isError(n) ? ZSTD_getErrorName(n) : "zstd: frame shorter than recorded");
    }
    H5free_memory(*buf);
    *buf = out;
    *buf_size = (size_t)size > 0 ? (size_t)size : 1;
    return n;
}

static size_t zstd_filter(unsigned int flags, size_t cd_nelmts, const unsigned int cd_values[], size_t nbytes,
                          size_t *buf_size, void **buf) {
    if (flags & H5Z_FLAG_REVERSE) return zstd_decompress_chunk(nbytes, buf_size, buf);
    return zstd_compress_chunk(level_from_cd_values(cd_nelmts, cd_values), nbytes, buf_size, buf);
}

static const H5Z_class2_t zstd_filter_class = {
    H5Z_CLASS_T_VERS, (H5Z_filter_t)H5ZSTD_FILTER_ID, 1, 1, "zstd (mvd h5zstd)", NULL, NULL, zstd_filter,
};

#ifdef MVD_H5ZSTD_PLUGIN

H5PL_type_t H5PLget_plugin_type(void) { return H5PL_TYPE_FILTER; }
const void *H5PLget_plugin_info(void) { return &zstd_filter_class; }

#else

int h5zstd_register(mvd_err *err) {
    /* H5Zregister replaces an existing registration of the same id, so repeating it is harmless. */
    if (H5Zregister(&zstd_filter_class) < 0)
        return mvd_fail(err, "HDF5: cannot register the zstd filter (id %d)", H5ZSTD_FILTER_ID);
    return 0;
}

int h5zstd_set_filter(hid_t dcpl, int level, mvd_err *err) {
    unsigned int cd_values[1] = {(unsigned int)(uint32_t)(int32_t)level};
    if (H5Pset_filter(dcpl, (H5Z_filter_t)H5ZSTD_FILTER_ID, H5Z_FLAG_MANDATORY, 1, cd_values) < 0)
        return mvd_fail(err, "HDF5: cannot add the zstd filter (id %d, level %d)", H5ZSTD_FILTER_ID, level);
    return 0;
}

#endif
