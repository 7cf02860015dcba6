#!/usr/bin/env python3
"""Reads the target cache shards written by the C test (build/tests/test_cache) with h5py + hdf5plugin.

This is the compatibility check of the cache format (schemas/cache-v1.md) from the Python side: the zstd chunks
written by the project's own filter are decoded by hdf5plugin's implementation of filter 32015; the targets come
back as numpy float16 (or float32) and equal the test formula recomputed here independently with numpy, rounded
by numpy's float32 -> float16 cast; the metadata attributes, the metadata JSON and the clip datasets hold what
the C test wrote; the target datasets are chunked one clip per chunk with the filters shuffle then zstd.
Run build/tests/test_cache first (tests/run.sh does)."""
import hashlib
import json
import os
import sys

import h5py
import hdf5plugin  # noqa: F401  (registers filter 32015 with h5py's HDF5)
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from harness import check, run, summary  # noqa: E402

OUT = os.path.join(ROOT, "build", "test-out")
SHARDS = {"float16": os.path.join(OUT, "cache-f16", "shard-00000.h5"),
          "float32": os.path.join(OUT, "cache-f32", "shard-00000.h5")}
NUM_CLIPS, TOKENS, DIM_IMAGE, DIM_VIDEO, NUM_FRAMES = 5, 32, 24, 16, 4
SPECIAL = np.array([1e5, -1e-8, 65519.0, 1.5 * 2.0 ** -24], dtype=np.float32)


def sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


def expected_targets(teacher, dim):
    """The C test's formula: k = (131 clip + 31 token + 7 d + 17 teacher) mod 2001 - 1000, divided in float32."""
    c, t, d = np.meshgrid(np.arange(NUM_CLIPS), np.arange(TOKENS), np.arange(dim), indexing="ij")
    k = (c * 131 + t * 31 + d * 7 + teacher * 17) % 2001 - 1000
    divisor = np.float32(7.0) if teacher == 0 else np.float32(70000.0)
    values = k.astype(np.float32) / divisor
    if teacher == 0:
        values[1, 0, :4] = SPECIAL
    return values


def expected_attributes(dtype):
    teacher = {"image_teacher": dict(kind="mae-vit-image", dim=24, depth=2, heads=2, mlp_hidden=96, patch=7,
                                     tubelet=1, input_size=28, grid_t=2, grid_h=4, grid_w=4, feature_dim=24,
                                     weights_sha256=sha("image weights"),
                                     provenance='test weights "quoted", licence: none', random_init=0),
               "video_teacher": dict(kind="videomae-vit-video", dim=16, depth=2, heads=2, mlp_hidden=64, patch=8,
                                     tubelet=2, input_size=32, grid_t=2, grid_h=4, grid_w=4, feature_dim=16,
                                     weights_sha256="", provenance="", random_init=1)}
    attrs = dict(format="mvd-target-cache", format_version=1, tool_version="0.1.0", ffmpeg_version="n5.1.6",
                 num_frames=4, frame_stride=4, input_size=32, image_input_size=28, crop_mode="multiscale",
                 seed=0xFEDCBA9876543210, views=2, mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225],
                 resize_filter="pil-bilinear", colour_conversion="swscale bitexact accurate_rnd", device="cpu",
                 precision="fp32", norm_feature=0, storage_dtype=dtype, zstd_level=3, shard_size=8, tokens=32,
                 list_path="build/test-out/list.txt", list_sha256=sha("list"))
    for prefix, fields in teacher.items():
        attrs.update({f"{prefix}.{k}": v for k, v in fields.items()})
    return attrs


def expected_clips():
    c = np.arange(NUM_CLIPS)
    start = c * 5
    frame_index = start[:, None] + 4 * np.arange(NUM_FRAMES)[None, :]
    return {
        "video_index": c // 2, "view": c % 2, "num_frames": np.full(NUM_CLIPS, NUM_FRAMES), "start": start,
        "frame_index": frame_index, "pts": 1000 + frame_index * 512,
        "time_base": np.tile([1, 12800], (NUM_CLIPS, 1)), "repeated": (c == 3).astype(int),
        "crop": np.stack([c, 2 * c, 100 + c, 90 + c], axis=1), "video_frames": 300 + c,
        "pixel_sha256": [sha(f"clip {i}").encode() for i in range(NUM_CLIPS)],
        "path": [f"videos/clip {i} \u00e9.mp4" for i in range(NUM_CLIPS)],
        "label": [f"label_{i}" for i in range(NUM_CLIPS)],
    }


def same_value(got, want):
    if isinstance(want, list):
        return np.array_equal(np.asarray(got), np.asarray(want))
    if isinstance(want, str):
        return isinstance(got, str) and got == want
    return int(got) == want


def check_attributes(f, dtype):
    want = expected_attributes(dtype)
    for name, value in want.items():
        check(f"{dtype}: attribute {name}", name in f.attrs and same_value(f.attrs[name], value),
              f"got {f.attrs.get(name)!r}, expected {value!r}")
    check(f"{dtype}: num_clips", int(f.attrs.get("num_clips", -1)) == NUM_CLIPS, str(f.attrs.get("num_clips")))
    check(f"{dtype}: seed is uint64", f.attrs["seed"].dtype == np.uint64, str(f.attrs["seed"].dtype))
    meta = json.loads(f.attrs["metadata_json"])
    flat = {}
    for key, value in meta.items():
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    flat["seed"] = int(flat["seed"])  # a decimal string in JSON
    check(f"{dtype}: metadata_json has the same fields", set(flat) == set(want), str(set(flat) ^ set(want)))
    for name, value in want.items():
        check(f"{dtype}: metadata_json {name}", name in flat and same_value(flat[name], value),
              f"got {flat.get(name)!r}, expected {value!r}")


def check_clips(f, dtype):
    want = expected_clips()
    for name, value in want.items():
        ds = f["clips"].get(name)
        if not check(f"{dtype}: clips/{name} exists", ds is not None):
            continue
        if name in ("path", "label"):
            got = list(ds.asstr()[()])
        else:
            got = ds[()]
            if name == "pixel_sha256":
                got = list(got)
        check(f"{dtype}: clips/{name}", np.array_equal(np.asarray(got), np.asarray(value)),
              f"got {got!r}, expected {value!r}")


def check_targets(f, dtype):
    np_dtype = np.float16 if dtype == "float16" else np.float32
    for teacher, name, dim in ((0, "image", DIM_IMAGE), (1, "video", DIM_VIDEO)):
        ds = f["targets"][name]
        check(f"{dtype}: targets/{name} dtype", ds.dtype == np_dtype, str(ds.dtype))
        check(f"{dtype}: targets/{name} shape", ds.shape == (NUM_CLIPS, TOKENS, dim), str(ds.shape))
        check(f"{dtype}: targets/{name} chunks", ds.chunks == (1, TOKENS, dim), str(ds.chunks))
        plist = ds.id.get_create_plist()
        filters = [plist.get_filter(i) for i in range(plist.get_nfilters())]
        codes = [flt[0] for flt in filters]
        check(f"{dtype}: targets/{name} filters shuffle then zstd", codes == [h5py.h5z.FILTER_SHUFFLE, 32015],
              str(filters))
        if codes == [h5py.h5z.FILTER_SHUFFLE, 32015]:
            check(f"{dtype}: zstd level", tuple(filters[1][2]) == (3,), str(filters[1][2]))
        got = ds[()]
        with np.errstate(over="ignore"):  # 1e5 overflows to inf in float16, as intended
            want = expected_targets(teacher, dim).astype(np_dtype)
        uint = np.uint16 if dtype == "float16" else np.uint32
        same = got.view(uint) == want.view(uint)
        check(f"{dtype}: targets/{name} equal the formula bit for bit", same.all(),
              f"{np.count_nonzero(~same)} values differ")
        if teacher == 0 and dtype == "float16":
            bits = got[1, 0, :4].view(np.uint16)
            check("float16: specials (inf, -0, 65504, tie to even)", list(bits) == [0x7C00, 0x8000, 0x7BFF, 0x0002],
                  [hex(b) for b in bits])


def make_test(dtype):
    def test():
        path = SHARDS[dtype]
        if not check(f"{dtype}: shard exists", os.path.exists(path), f"{path}: run build/tests/test_cache first"):
            return
        check(f"{dtype}: no temporary file left", not os.path.exists(path + ".tmp"))
        with h5py.File(path, "r") as f:
            check_attributes(f, dtype)
            check_clips(f, dtype)
            check_targets(f, dtype)
    test.__name__ = f"test_shard_{dtype}"
    return test


if __name__ == "__main__":
    run(make_test("float16"))
    run(make_test("float32"))
    summary()
