/* h5zstd.h: the Zstandard HDF5 filter (registered filter id 32015) used by the target cache.
 *
 * Each chunk is stored as exactly one zstd frame whose header records the decompressed size, the form every
 * public 32015 implementation reads (hdf5plugin for h5py, HDF Group's hdf5_plugins). The filter's only client
 * value, cd_values[0], is the compression level as a signed int (a negative level stored as its uint32 bit
 * pattern); without it zstd's default level (3) is used. Decompression checks the frame's recorded size before
 * allocating and refuses frames without one, with trailing bytes, or larger than H5ZSTD_MAX_CHUNK_BYTES.
 *
 * The same source builds two ways: inside libmvd (h5zstd_register, h5zstd_set_filter) and, with
 * -DMVD_H5ZSTD_PLUGIN, as a dynamic HDF5 plugin (build/plugins/libh5zstd.so) so that h5dump and other HDF5
 * programs read the caches with HDF5_PLUGIN_PATH=build/plugins. */
#ifndef MVD_H5ZSTD_H
#define MVD_H5ZSTD_H

#include <hdf5.h>

#define H5ZSTD_FILTER_ID 32015
/* Refuse to decompress a chunk claiming more than this (caches hold a few MiB per chunk). */
#define H5ZSTD_MAX_CHUNK_BYTES ((unsigned long long)1 << 30)

#ifndef MVD_H5ZSTD_PLUGIN
#include "util.h"

/* Registers the filter with the HDF5 library of this process; safe to call more than once. */
int h5zstd_register(mvd_err *err);

/* Adds the filter to a dataset creation property list (mandatory) with the given zstd level. */
int h5zstd_set_filter(hid_t dcpl, int level, mvd_err *err);
#endif

#endif
