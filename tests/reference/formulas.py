"""The reference's data formulas, restated in Python as the oracle for the C clip sampler.

Sources (ruiwang2021/mvd): kinetics.py (VideoDistillation: start sampling and the frame loader's walk),
transforms.py (GroupMultiScaleTwoResizedCrop: crop sizes, pairs and the 13 fixed offsets) and
masking_generator.py (TubeMaskingGenerator: mask counts). Each function states the rule as the reference applies
it, including its quirks, so tests/py/test_preprocess.py can compare the C functions (common/clip.c,
common/mask.c) with it line by line.
"""

SCALES = (1, .875, .75, .66)


def start_range(video_frames, num_frames, stride, segments=1):
    """Inclusive range of the first frame (0-based) the reference can pick with one segment.

    The span is num_frames * stride; the reference draws randint(video_frames - span + 1) when that bound is
    positive and uses 0 otherwise (its middle branch needs video_frames > span, which cannot hold then).
    """
    span = num_frames * stride
    average = (video_frames - span + 1) // segments
    if average > 0:
        return 0, average - 1
    return 0, 0


def frame_indices(start, num_frames, stride, video_frames):
    """Frame indices the reference's loader reads for a 0-based start (no temporal jitter).

    The loader keeps a 1-based offset; each sampled frame is offset - 1, and the offset moves on by the stride
    only while offset + stride < video_frames. Returns (indices, repeated) where repeated counts the steps that
    did not move.
    """
    offset = start + 1
    indices, repeated = [], 0
    for k in range(num_frames):
        indices.append(offset - 1)
        if offset + stride < video_frames:
            offset += stride
        elif k + 1 < num_frames:
            repeated += 1
    return indices, repeated


def crop_candidates(width, height, input_size, scales=SCALES, max_distort=1):
    """(w, h) pairs the multi-scale crop chooses from, in the reference's order.

    Side lengths are int(short_side * scale); one within 3 px of the input size becomes the input size (width
    and height snapped separately against a square input); a pair takes its height from scale i (outer) and its
    width from scale j (inner) whenever |i - j| <= max_distort.
    """
    base = min(width, height)
    sides = [int(base * s) for s in scales]
    heights = [input_size if abs(x - input_size) < 3 else x for x in sides]
    widths = [input_size if abs(x - input_size) < 3 else x for x in sides]
    return [(w, h) for i, h in enumerate(heights) for j, w in enumerate(widths) if abs(i - j) <= max_distort]


def crop_offsets(width, height, crop_w, crop_h):
    """The 13 (x, y) offsets of the fixed-offset crop: steps of (W - w) // 4 and (H - h) // 4 (floor division,
    so a crop wider than the frame gives negative steps); corners, centre, edge midpoints, quarter points."""
    ws, hs = (width - crop_w) // 4, (height - crop_h) // 4
    steps = [(0, 0), (4, 0), (0, 4), (4, 4), (2, 2),
             (0, 2), (4, 2), (2, 4), (2, 0),
             (1, 1), (3, 1), (1, 3), (3, 3)]
    return [(a * ws, b * hs) for a, b in steps]


def tube_mask_counts(ratio, frames, grid_h, grid_w):
    """(masked per frame, masked in total) of tube masking: int(ratio * H*W) spatial positions, repeated over
    the frames."""
    per_frame = int(ratio * (grid_h * grid_w))  # the product first, as the reference computes it
    return per_frame, per_frame * frames
