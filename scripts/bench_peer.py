"""The PyTorch peer of tests/bench/bench_model.c: the same model sizes with the reference implementation
(tests/reference/mvd_reference.py) in fp32 on the CPU, timed the same way (median of REPS after one warm-up).

  bench_peer.py student DIM DEPTH HEADS DEC_DIM DEC_DEPTH DEC_HEADS TEACHER_DIM BATCH FRAMES SIZE REPS
  bench_peer.py teacher image|video DIM DEPTH HEADS FRAMES SIZE REPS
Prints one JSON line like the C program."""
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "reference"))
import mvd_reference as ref  # noqa: E402


def timed(fn, reps):
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_student(a):
    dim, depth, heads, ddim, ddepth, dheads, tdim, batch, frames, size, reps = map(int, a)
    model = ref.MVDStudent(num_frames=frames, img_size=size, dim=dim, depth=depth, heads=heads, decoder_dim=ddim,
                           decoder_depth=ddepth, decoder_heads=dheads, target_dim_img=tdim, target_dim_vid=tdim)
    opt = ref.make_adamw(model, 1e-4, 0.05)
    g = torch.Generator().manual_seed(0)
    clip = torch.randn(batch, 3, frames, size, size, generator=g)
    n = model.num_tokens
    mask = ref.tube_mask(batch, frames // 2, size // 16, 0.9, g)
    ti, tv = torch.randn(batch, n, tdim, generator=g), torch.randn(batch, n, tdim, generator=g)

    def step():
        opt.zero_grad()
        pi, pv = model(clip, mask)
        loss, _, _ = ref.mvd_loss(pi, pv, ti, tv, mask)
        loss.backward()
        opt.step()
    return {"what": "student step", "seconds": timed(step, reps)}


def bench_teacher(a):
    kind = a[0]
    dim, depth, heads, frames, size, reps = map(int, a[1:])
    g = torch.Generator().manual_seed(0)
    if kind == "image":
        model = ref.ImageTeacher(img_size=size, dim=dim, depth=depth, heads=heads).eval()
        x = torch.randn(frames // 2, 3, size, size, generator=g)
    else:
        model = ref.VideoTeacher(dim=dim, depth=depth, heads=heads).eval()
        x = torch.randn(1, 3, frames, size, size, generator=g)
    with torch.no_grad():
        seconds = timed(lambda: model(x), reps)
    return {"what": f"{kind} teacher forward", "seconds": seconds}


if __name__ == "__main__":
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", os.cpu_count())))
    out = bench_student(sys.argv[2:]) if sys.argv[1] == "student" else bench_teacher(sys.argv[2:])
    print(json.dumps(out))
