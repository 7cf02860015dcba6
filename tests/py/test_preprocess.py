"""Preprocessing against independent references: Pillow's resize, torch's normalisation and the reference's
formulas (tests/reference/formulas.py).

Inputs come from the C tests, which write them under build/test-out/: build/tests/test_resize writes real
crops of the sample videos and the project's resizes of them; build/tests/test_clip writes its formula answers
and one decoded clip. When those files are missing this script runs the two programs first (build them with
`make build/tests/test_resize build/tests/test_clip`; the sample videos come from
scripts/fetch-sample-data.sh).
"""
import hashlib
import os
import subprocess
import sys

import numpy as np
from PIL import Image

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "py"))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))

import formulas  # noqa: E402
from harness import check, run, summary  # noqa: E402

RESIZE_DIR = os.path.join(ROOT, "build", "test-out", "resize")
CLIP_DIR = os.path.join(ROOT, "build", "test-out", "clip")
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def ensure_outputs(marker, program):
    """Runs the C test that writes `marker` if it is not there yet."""
    if os.path.exists(marker):
        return True
    exe = os.path.join(ROOT, "build", "tests", program)
    if not os.path.exists(exe):
        check(f"{program} built", False, f"{exe} missing: run make build/tests/{program}")
        return False
    proc = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True, timeout=300)
    check(f"{program} ran", proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:])
    return os.path.exists(marker)


def load_rgb(path, w, h):
    data = np.fromfile(path, dtype=np.uint8)
    assert data.size == w * h * 3, f"{path}: {data.size} bytes, expected {w * h * 3}"
    return data.reshape(h, w, 3)


def test_resize_matches_pillow():
    manifest = os.path.join(RESIZE_DIR, "manifest.txt")
    if not ensure_outputs(manifest, "test_resize"):
        return
    cases = [line.split() for line in open(manifest) if line.strip()]
    check("resize cases present", len(cases) >= 16, f"{len(cases)} cases")
    kinds = set()
    worst = 0
    exact = 0
    for video, cw, ch, ow, oh, crop_name, out_name in cases:
        cw, ch, ow, oh = int(cw), int(ch), int(ow), int(oh)
        crop = load_rgb(os.path.join(RESIZE_DIR, crop_name), cw, ch)
        ours = load_rgb(os.path.join(RESIZE_DIR, out_name), ow, oh).astype(np.int32)
        pil = np.asarray(Image.fromarray(crop, "RGB").resize((ow, oh), Image.BILINEAR)).astype(np.int32)
        diff = np.abs(ours - pil)
        kinds.add("shrink" if ow * oh < cw * ch else "enlarge")
        worst = max(worst, int(diff.max()))
        exact += int(diff.max() == 0)
        print(f"  {video:13s} {cw}x{ch} -> {ow}x{oh}: mean abs diff {diff.mean():.6f}, max {diff.max()}")
        check(f"{video} {cw}x{ch}->{ow}x{oh} within 1", diff.max() <= 1, f"max abs diff {diff.max()}")
    check("both shrinking and enlarging covered", kinds == {"shrink", "enlarge"}, str(kinds))
    print(f"  {exact} of {len(cases)} cases bit-exact with Pillow {Image.__version__}; worst max abs diff {worst}")


def test_clip_pixels():
    meta_path = os.path.join(CLIP_DIR, "pixels_meta.txt")
    if not ensure_outputs(meta_path, "test_clip"):
        return
    t, cw, ch, s, si, tubelet, sha = open(meta_path).read().split()
    t, cw, ch, s, si, tubelet = map(int, (t, cw, ch, s, si, tubelet))
    crops = np.fromfile(os.path.join(CLIP_DIR, "crops.rgb"), dtype=np.uint8).reshape(t, ch, cw, 3)
    frames = np.fromfile(os.path.join(CLIP_DIR, "frames224.rgb"), dtype=np.uint8).reshape(t, s, s, 3)
    small = np.fromfile(os.path.join(CLIP_DIR, "frames112.rgb"), dtype=np.uint8).reshape(t, si, si, 3)
    # The resize of each frame, to the student's size and to the teacher's own size, is Pillow's.
    for i in range(t):
        img = Image.fromarray(crops[i], "RGB")
        for size, ours in ((s, frames[i]), (si, small[i])):
            pil = np.asarray(img.resize((size, size), Image.BILINEAR))
            d = np.abs(pil.astype(int) - ours.astype(int)).max()
            check(f"clip frame {i} at {size}", d <= 1, f"max abs diff {d}")
    check("pixel_sha256", hashlib.sha256(frames.tobytes()).hexdigest() == sha, "sha256 of (t,h,w,c) uint8 frames")

    # Normalisation as the reference does it: ToTorchFormatTensor(div=True) then GroupNormalize, in torch.
    import torch
    x = torch.from_numpy(frames.copy()).permute(0, 3, 1, 2).reshape(t * 3, s, s).float().div(255.)
    for plane, m, sd in zip(x, MEAN * t, STD * t):
        plane.sub_(m).div_(sd)
    want = x.view(t, 3, s, s).transpose(0, 1).numpy()  # the reference's C,T,H,W
    got = np.fromfile(os.path.join(CLIP_DIR, "student_input.f32"), dtype=np.float32).reshape(3, t, s, s)
    err = float(np.abs(got - want).max())
    print(f"  student input vs torch: max abs diff {err:.3g}, bit-exact {bool(np.array_equal(got, want))}")
    check("student input equals torch's", err <= 1e-6, f"max abs diff {err}")

    y = torch.from_numpy(small[::tubelet].copy()).permute(0, 3, 1, 2).float().div(255.)
    for c in range(3):
        y[:, c].sub_(MEAN[c]).div_(STD[c])
    got = np.fromfile(os.path.join(CLIP_DIR, "teacher_input.f32"), dtype=np.float32).reshape(t // tubelet, 3, si, si)
    err = float(np.abs(got - y.numpy()).max())
    print(f"  image-teacher input vs torch: max abs diff {err:.3g}")
    check("image-teacher input equals torch's", err <= 1e-6, f"max abs diff {err}")


def parse_pairs(tokens):
    return [tuple(int(v) for v in tok.split(",")) for tok in tokens]


def test_formulas_match_reference():
    path = os.path.join(CLIP_DIR, "formulas.txt")
    if not ensure_outputs(path, "test_clip"):
        return
    counts = {}
    mismatches = []
    for line in open(path):
        head, _, tail = line.partition(":")
        kind, *args = head.split()
        counts[kind] = counts.get(kind, 0) + 1
        if kind == "indices":
            start, num, stride, n = map(int, args)
            values, _, rep = tail.partition(";")
            got = ([int(v) for v in values.split()], int(rep))
            want = formulas.frame_indices(start, num, stride, n)
        elif kind == "start":
            n, num, stride = map(int, args)
            got = tuple(int(v) for v in tail.split())
            want = formulas.start_range(n, num, stride)
        elif kind == "crops":
            w, h, size = map(int, args)
            got = parse_pairs(tail.split())
            want = formulas.crop_candidates(w, h, size)
        elif kind == "offsets":
            w, h, cw, ch = map(int, args)
            got = parse_pairs(tail.split())
            want = formulas.crop_offsets(w, h, cw, ch)
        elif kind == "mask":
            ratio, gh, gw = float(args[0]), int(args[1]), int(args[2])
            got = int(tail)
            want = formulas.tube_mask_counts(ratio, 1, gh, gw)[0]
        else:
            mismatches.append(f"unknown line: {line.strip()}")
            continue
        if got != want:
            mismatches.append(f"{head.strip()}: C {got}, reference {want}")
    for m in mismatches[:10]:
        print("  " + m)
    print(f"  compared: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    check("C formulas equal the reference's", not mismatches, f"{len(mismatches)} mismatches")
    check("every formula compared", set(counts) == {"indices", "start", "crops", "offsets", "mask"}, str(counts))
    # Known values, so the comparison itself is anchored: MVD's 176 of 196 masked, 1408 of 1568 in total.
    check("tube mask counts", formulas.tube_mask_counts(0.9, 8, 14, 14) == (176, 1408))
    check("reference quirk: 61 frames stop at 56", formulas.frame_indices(0, 16, 4, 61)[0][-1] == 56)


if __name__ == "__main__":
    run(test_formulas_match_reference)
    run(test_resize_matches_pillow)
    run(test_clip_pixels)
    summary()
