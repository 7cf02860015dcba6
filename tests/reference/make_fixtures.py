#!/usr/bin/env python3
"""Writes the reference fixtures described in tests/reference/FIXTURES.md.

    build/venv/bin/python tests/reference/make_fixtures.py OUTDIR [--case NAME ...] [--converted DIR]

One folder per case under OUTDIR (config.json, image_teacher.safetensors, video_teacher.safetensors,
student.safetensors, io.safetensors). Everything comes from fixed seeds: rerunning gives the same files.

Precision: weights and inputs are drawn in float32 and stored as float32; the oracle then runs in float64 on
exactly those values (forward, backward, AdamW), and its results are rounded to float32 when stored. The C
side computes in float32, so the float64 oracle is the more accurate side of every comparison.

--converted DIR additionally writes a teacher set that goes through the checkpoint converter: reference-style
`.pth` files (MAE pretrain checkpoint with its decoder keys, VideoMAE pretrain checkpoint, both as
{'model': state_dict}) under DIR/src/, their conversions by scripts/convert_checkpoint.py as
DIR/image_teacher.safetensors and DIR/video_teacher.safetensors, and DIR/io.safetensors with clip,
image_input, target_img, target_vid (+ _normed) computed by the PyTorch teachers, plus DIR/config.json in the
case format. A C test can load the converted files and compare its targets with io.safetensors.
"""
import argparse
import importlib.util
import json
import os
import shutil
import sys
import time

import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import mvd_reference as ref  # noqa: E402

# 10 AdamW steps in every case: warmup over 3 (lr 0, half the peak, the peak), then cosine over the rest of 12.
OPTIM = {"lr": 1e-3, "min_lr": 1e-4, "warmup_steps": 3, "total_steps": 12, "weight_decay": 0.05,
         "beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "steps": 10}


def _case(name, frames, size, patch, batch, mask_ratio, student, img, vid, vid_decoder, seed, **optim):
    return {"case": name, "num_frames": frames, "input_size": size, "patch": patch, "tubelet": 2,
            "batch": batch, "mask_ratio": mask_ratio, "loss_weights": [1.0, 1.0], "student": student,
            "image_teacher": img, "video_teacher": vid, "optim": dict(OPTIM, **optim),
            "_video_teacher_decoder": vid_decoder, "_seed": seed}


def _student(dim, depth, heads, ddim, ddepth, dheads, drop_path):
    return {"dim": dim, "depth": depth, "heads": heads, "mlp_ratio": 4.0, "decoder_dim": ddim,
            "decoder_depth": ddepth, "decoder_heads": dheads, "drop_path": drop_path}


def _teacher(dim, depth, heads, patch, **extra):
    return {"dim": dim, "depth": depth, "heads": heads, "mlp_ratio": 4.0, "patch": patch, **extra}


# Teacher widths differ from each other and from the student's so that a mixed-up dimension fails loudly.
CASES = {
    "small": _case("small", 4, 32, 8, 2, 0.75, _student(32, 2, 2, 16, 2, 2, 0.0),
                   _teacher(24, 2, 2, 7, input_size=28), _teacher(20, 2, 2, 8, tubelet=2),
                   {"dim": 16, "depth": 1, "heads": 2}, 101),
    "small_droppath": _case("small_droppath", 4, 32, 8, 2, 0.75, _student(32, 3, 2, 16, 2, 2, 0.3),
                            _teacher(24, 2, 2, 7, input_size=28), _teacher(20, 2, 2, 8, tubelet=2),
                            {"dim": 16, "depth": 1, "heads": 2}, 202),
    "real": _case("real", 16, 224, 16, 1, 0.9, _student(64, 2, 4, 32, 2, 2, 0.0),
                  _teacher(48, 2, 3, 16, input_size=224), _teacher(40, 2, 2, 16, tubelet=2),
                  {"dim": 32, "depth": 1, "heads": 2}, 303),
    "real_droppath": _case("real_droppath", 16, 224, 16, 2, 0.9, _student(64, 2, 4, 32, 2, 2, 0.2),
                           _teacher(48, 2, 3, 16, input_size=224), _teacher(40, 2, 2, 16, tubelet=2),
                           {"dim": 32, "depth": 1, "heads": 2}, 404),
}


def public_config(cfg):
    return {k: v for k, v in cfg.items() if not k.startswith("_")}


def perturb(model, gen):
    """Moves LayerNorm parameters and zero-initialised biases off their init values, so that every gradient
    path is exercised and no term hides behind a 1 or a 0."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.add_(0.1 * torch.randn(m.weight.shape, generator=gen))
                m.bias.add_(0.05 * torch.randn(m.bias.shape, generator=gen))
        for name, p in model.named_parameters():
            if name.endswith(".bias") or name.endswith("q_bias") or name.endswith("v_bias"):
                if "norm" not in name.split(".")[-2]:
                    p.add_(0.02 * torch.randn(p.shape, generator=gen))


def build_models(cfg):
    """(student, image_teacher, video_teacher) in float32 with reference init + perturbation."""
    torch.manual_seed(cfg["_seed"])
    gen = torch.Generator().manual_seed(cfg["_seed"] + 1)
    s, it, vt, vd = cfg["student"], cfg["image_teacher"], cfg["video_teacher"], cfg["_video_teacher_decoder"]
    student = ref.MVDStudent(num_frames=cfg["num_frames"], img_size=cfg["input_size"], patch=cfg["patch"],
                             tubelet=cfg["tubelet"], dim=s["dim"], depth=s["depth"], heads=s["heads"],
                             mlp_ratio=s["mlp_ratio"], decoder_dim=s["decoder_dim"],
                             decoder_depth=s["decoder_depth"], decoder_heads=s["decoder_heads"],
                             target_dim_img=it["dim"], target_dim_vid=vt["dim"], drop_path=s["drop_path"])
    image_teacher = ref.ImageTeacher(img_size=it["input_size"], patch=it["patch"], dim=it["dim"],
                                     depth=it["depth"], heads=it["heads"], mlp_ratio=it["mlp_ratio"])
    video_teacher = ref.VideoTeacher(patch=vt["patch"], tubelet=vt["tubelet"], dim=vt["dim"], depth=vt["depth"],
                                     heads=vt["heads"], mlp_ratio=vt["mlp_ratio"], decoder_dim=vd["dim"],
                                     decoder_depth=vd["depth"], decoder_heads=vd["heads"])
    for m in (student, image_teacher, video_teacher):
        perturb(m, gen)
    return student, image_teacher, video_teacher


def tensors_of(model):
    return {k: v.detach().float().contiguous().clone() for k, v in model.state_dict().items()}


def make_inputs(cfg, gen):
    """clip [B,3,T,H,W] and image_input [B*T',3,Si,Si] (the clip's frames when Si equals the clip size)."""
    b, t, h = cfg["batch"], cfg["num_frames"], cfg["input_size"]
    clip = torch.randn(b, 3, t, h, h, generator=gen)
    si = cfg["image_teacher"]["input_size"]
    if si == h:
        image_input = ref.image_teacher_frames(clip, cfg["tubelet"]).contiguous()
    else:
        image_input = torch.randn(b * t // cfg["tubelet"], 3, si, si, generator=gen)
    return clip, image_input


@torch.no_grad()
def teacher_targets(cfg, image_teacher, video_teacher, clip, image_input):
    """float64 targets [B, N, D] of both teachers (eval mode, no drop path)."""
    image_teacher, video_teacher = image_teacher.double().eval(), video_teacher.double().eval()
    t_img = ref.image_teacher_targets(image_teacher, image_input.double(), cfg["batch"])
    t_vid = video_teacher(clip.double())
    return t_img, t_vid


def drop_decisions(cfg, rates, gen):
    """[steps, n_blocks, 2, B] of 0/1 drawn with keep probability 1 - rate (all 1 where rate is 0). Drawn
    again (same generator) until step 0 drops at least one branch (where any rate is positive) but keeps every
    branch for at least one sample, so that grad.* has no parameter cut off from the loss."""
    steps, b = cfg["optim"]["steps"], cfg["batch"]
    keep_p = torch.tensor([1.0 - r for r in rates], dtype=torch.float64).view(1, -1, 1, 1)
    while True:
        keep = torch.bernoulli(keep_p.expand(steps, len(rates), 2, b).contiguous(), generator=gen)
        if max(rates) == 0.0 or ((keep[0] == 0).any() and (keep[0].sum(-1) > 0).all()):
            return keep.float()


def run_case(cfg, outdir):
    """Writes one case folder: built under NAME.tmp, then renamed, so a folder under its final name is whole."""
    name = cfg["case"]
    final_folder = os.path.join(outdir, name)
    folder = final_folder + ".tmp"
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    student, image_teacher, video_teacher = build_models(cfg)
    gen = torch.Generator().manual_seed(cfg["_seed"] + 2)

    save_file(tensors_of(student), os.path.join(folder, "student.safetensors"), metadata={"kind": "mvd-student"})
    save_file(tensors_of(image_teacher), os.path.join(folder, "image_teacher.safetensors"),
              metadata={"kind": "mae"})
    save_file(tensors_of(video_teacher), os.path.join(folder, "video_teacher.safetensors"),
              metadata={"kind": "videomae"})

    clip, image_input = make_inputs(cfg, gen)
    t_img, t_vid = teacher_targets(cfg, image_teacher, video_teacher, clip, image_input)
    # the C side reads fp32 targets: the student is trained against exactly those values
    t_img32, t_vid32 = t_img.float(), t_vid.float()

    t_size, grid = cfg["num_frames"] // cfg["tubelet"], cfg["input_size"] // cfg["patch"]
    mask = ref.tube_mask(cfg["batch"], t_size, grid, cfg["mask_ratio"], gen)
    keep = drop_decisions(cfg, student.block_rates(), gen)
    w_img, w_vid = cfg["loss_weights"]

    student = student.double().train()
    clip64, ti64, tv64, keep64 = clip.double(), t_img32.double(), t_vid32.double(), keep.double()
    io = {"clip": clip, "image_input": image_input, "target_img": t_img32, "target_vid": t_vid32,
          "target_img_normed": ref.normalize_features(t_img).float(),
          "target_vid_normed": ref.normalize_features(t_vid).float(),
          "mask": mask.to(torch.uint8), "drop_keep": keep}

    # `steps` AdamW updates on the same batch with the reference's groups and per-step schedule; the forward
    # and backward of step 0 (drop_keep[0], initial weights) also give pred_*, loss_* and grad.*
    trainable = [(n, p) for n, p in student.named_parameters() if p.requires_grad]
    o = cfg["optim"]
    opt = ref.make_adamw(student, o["lr"], o["weight_decay"], (o["beta1"], o["beta2"]), o["eps"])
    sched = ref.cosine_schedule(o["lr"], o["min_lr"], o["total_steps"], o["warmup_steps"])
    losses = []
    for s in range(o["steps"]):
        for g in opt.param_groups:
            g["lr"] = float(sched[s])
        opt.zero_grad()
        pred_img, pred_vid = student(clip64, mask, keep64[s])
        loss, l_img, l_vid = ref.mvd_loss(pred_img, pred_vid, ti64, tv64, mask, w_img, w_vid)
        losses.append(float(loss))
        loss.backward()
        if s == 0:
            io.update({"pred_img": pred_img.detach().float(), "pred_vid": pred_vid.detach().float(),
                       "loss_img": l_img.detach().float().view(1), "loss_vid": l_vid.detach().float().view(1),
                       "loss": loss.detach().float().view(1)})
            for n, p in trainable:
                io["grad." + n] = p.grad.detach().float().clone()
            d_img = (pred_img - ref.masked_targets(ti64, mask)).abs()
            quad_frac = float((d_img < 1).double().mean())
        opt.step()
    io["train_loss"] = torch.tensor(losses, dtype=torch.float32)
    io["train_lr"] = torch.tensor(sched[:o["steps"]], dtype=torch.float32)
    for n, p in trainable:
        io["final." + n] = p.detach().float().clone()

    save_file({k: v.contiguous() for k, v in io.items()}, os.path.join(folder, "io.safetensors"))
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(public_config(cfg), f, indent=1)
        f.write("\n")
    shutil.rmtree(final_folder, ignore_errors=True)
    os.rename(folder, final_folder)
    return {"loss": losses[0], "quadratic_fraction": quad_frac,
            "dropped_branches": int((keep == 0).sum()), "train_loss": losses}


def _load_converter():
    path = os.path.join(HERE, "..", "..", "scripts", "convert_checkpoint.py")
    spec = importlib.util.spec_from_file_location("convert_checkpoint", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def write_converted_teachers(outdir, case="small"):
    """The teacher file set that goes through the converter (see the module docstring)."""
    cfg = CASES[case]
    conv = _load_converter()
    os.makedirs(os.path.join(outdir, "src"), exist_ok=True)
    _, image_teacher, video_teacher = build_models(cfg)
    it, vt = cfg["image_teacher"], cfg["video_teacher"]
    mae_pth = os.path.join(outdir, "src", "mae_pretrain.pth")
    vmae_pth = os.path.join(outdir, "src", "videomae_pretrain.pth")
    torch.save({"model": ref.mae_pretrain_state_dict(image_teacher, decoder_dim=16, decoder_depth=1)}, mae_pth)
    torch.save({"model": video_teacher.state_dict()}, vmae_pth)
    for argv in (["mae", mae_pth, os.path.join(outdir, "image_teacher.safetensors"), "--heads", str(it["heads"])],
                 ["videomae", vmae_pth, os.path.join(outdir, "video_teacher.safetensors"),
                  "--heads", str(vt["heads"])]):
        if conv.main(argv) != 0:
            raise RuntimeError(f"conversion failed: {argv}")
    gen = torch.Generator().manual_seed(cfg["_seed"] + 2)
    clip, image_input = make_inputs(cfg, gen)
    t_img, t_vid = teacher_targets(cfg, image_teacher, video_teacher, clip, image_input)
    io = {"clip": clip, "image_input": image_input, "target_img": t_img.float(), "target_vid": t_vid.float(),
          "target_img_normed": ref.normalize_features(t_img).float(),
          "target_vid_normed": ref.normalize_features(t_vid).float()}
    save_file({k: v.contiguous() for k, v in io.items()}, os.path.join(outdir, "io.safetensors"))
    with open(os.path.join(outdir, "config.json"), "w") as f:
        json.dump(dict(public_config(cfg), case="converted_teachers"), f, indent=1)
        f.write("\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description="Write the PyTorch reference fixtures (see tests/reference/FIXTURES.md).")
    ap.add_argument("outdir", help="output folder; one sub-folder per case")
    ap.add_argument("--case", action="append", choices=sorted(CASES), help="only these cases (repeatable)")
    ap.add_argument("--converted", metavar="DIR",
                    help="also write the converted-teacher file set (converter output + expected targets) to DIR")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    start = time.time()
    for name in args.case or list(CASES):
        t0 = time.time()
        info = run_case(CASES[name], args.outdir)
        print(f"{name}: loss {info['loss']:.6f}, train_loss {['%.6f' % v for v in info['train_loss']]}, "
              f"|d|<1 fraction {info['quadratic_fraction']:.2f}, dropped branches {info['dropped_branches']} "
              f"({time.time() - t0:.1f}s)", flush=True)
    if args.converted:
        write_converted_teachers(args.converted)
        print(f"converted teacher set written to {args.converted}")
    print(f"fixtures written to {args.outdir} in {time.time() - start:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
