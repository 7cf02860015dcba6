#!/usr/bin/env python3
"""Tests of scripts/convert_checkpoint.py.

Checkpoints are built with the PyTorch reference modules (tests/reference/mvd_reference.py) in the structure of
the official files (a dict with 'model', the keys a teacher ignores included; also 'module', bare and prefixed
variants), converted, and checked: every kept tensor equal, every dropped key reported, the metadata right, bad
inputs refused with a message naming the key, the layouts equal to the reference modules' state dicts, the
converted teachers reproducing the PyTorch targets, and a student round trip safetensors -> .pth ->
load_state_dict(strict=True)."""
import contextlib
import hashlib
import importlib.util
import io
import json
import os
import subprocess
import sys
import tempfile

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
sys.path.insert(0, HERE)
import make_fixtures  # noqa: E402
import mvd_reference as ref  # noqa: E402
from harness import check, run, summary  # noqa: E402

torch.set_num_threads(1)  # many tiny ops: one thread avoids spinning on a shared machine
SCRIPT = os.path.join(ROOT, "scripts", "convert_checkpoint.py")
_spec = importlib.util.spec_from_file_location("convert_checkpoint", SCRIPT)
conv = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(conv)
TMP = tempfile.mkdtemp(prefix="mvd-convert-")


def convert(*argv):
    """(exit code, stdout, stderr) of an in-process conversion."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = conv.main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def path(name):
    return os.path.join(TMP, name)


def small_models():
    cfg = make_fixtures.CASES["small"]
    return cfg, make_fixtures.build_models(cfg)


def same_tensors(got, want):
    """Names of the differences between two name -> tensor maps (empty when equal)."""
    diff = [f"missing {k}" for k in want if k not in got] + [f"extra {k}" for k in got if k not in want]
    diff += [f"{k} differs" for k in want if k in got and not torch.equal(got[k], want[k].float())]
    return diff


def dropped_in(stderr):
    return {line.split(":")[0][len("dropped "):] for line in stderr.splitlines() if line.startswith("dropped ")}


def test_mae_variants():
    cfg, (_, image_teacher, _) = small_models()
    teacher_sd = {k: v.clone() for k, v in image_teacher.state_dict().items()}
    full = ref.mae_pretrain_state_dict(image_teacher, decoder_dim=16, decoder_depth=1)
    full["head.weight"], full["head.bias"] = torch.randn(10, 24), torch.randn(10)
    ignored = set(full) - set(teacher_sd)
    check("official MAE structure has decoder keys", {"mask_token", "decoder_embed.weight", "decoder_pos_embed",
                                                      "decoder_pred.bias", "decoder_blocks.0.attn.qkv.bias"}
          <= ignored)
    variants = {
        "model": {"model": full, "optimizer": {"state": {}}, "epoch": 3},
        "module": {"module": full},
        "bare": full,
        "backbone-prefixed": {"model": {"backbone." + k: v for k, v in full.items()}},
    }
    for name, obj in variants.items():
        src, dst = path(f"mae_{name}.pth"), path(f"mae_{name}.safetensors")
        torch.save(obj, src)
        rc, out, err = convert("mae", src, dst, "--heads", 2)
        check(f"mae {name}: converts", rc == 0, err)
        if rc:
            continue
        got = load_file(dst)
        diff = same_tensors(got, teacher_sd)
        check(f"mae {name}: every kept tensor equal, pos_embed kept", not diff, "; ".join(diff[:5]))
        check(f"mae {name}: every dropped key reported", dropped_in(err) == ignored,
              str(sorted(dropped_in(err) ^ ignored)[:5]))
        with safe_open(dst, framework="pt") as f:
            meta = f.metadata()
        with open(src, "rb") as f:
            sha = hashlib.sha256(f.read()).hexdigest()
        conf = json.loads(meta["config"])
        check(f"mae {name}: metadata", meta["kind"] == "mae" and meta["source_sha256"] == sha and
              meta["source"] == os.path.abspath(src) and conf["heads"] == 2 and conf["dim"] == 24 and
              conf["patch"] == 7 and conf["depth"] == 2 and set(json.loads(meta["dropped_keys"])) == ignored,
              str(meta))
    # the reference does not strip 'module.': refused unless asked for
    src = path("mae_ddp.pth")
    torch.save({"model": {"module." + k: v for k, v in full.items()}}, src)
    rc, _, err = convert("mae", src, path("mae_ddp.safetensors"), "--heads", 2)
    check("mae module.-prefixed: refused by default, naming the key and the prefix",
          rc == 1 and "missing key patch_embed.proj.weight" in err and "--strip-prefix module." in err, err[-300:])
    check("mae refused: no output file", not os.path.exists(path("mae_ddp.safetensors")))
    rc, _, err = convert("mae", src, path("mae_ddp.safetensors"), "--heads", 2, "--strip-prefix", "module.")
    check("mae module.-prefixed: accepted with --strip-prefix module.",
          rc == 0 and not same_tensors(load_file(path("mae_ddp.safetensors")), teacher_sd), err[-300:])


def test_videomae_and_targets():
    cfg, (_, image_teacher, video_teacher) = small_models()
    full = video_teacher.state_dict()
    encoder = {k: v for k, v in full.items() if k.startswith("encoder.")}
    ignored = set(full) - set(encoder)
    check("official VideoMAE structure has decoder keys",
          {"mask_token", "encoder_to_decoder.weight", "decoder.head.weight", "decoder.blocks.0.attn.q_bias"}
          <= ignored)
    for name, obj in {"model": {"model": full, "epoch": 1}, "bare": dict(full)}.items():
        src, dst = path(f"vmae_{name}.pth"), path(f"vmae_{name}.safetensors")
        torch.save(obj, src)
        rc, _, err = convert("videomae", src, dst, "--heads", 2)
        check(f"videomae {name}: converts", rc == 0, err)
        if rc:
            continue
        diff = same_tensors(load_file(dst), encoder)
        check(f"videomae {name}: every kept tensor equal", not diff, "; ".join(diff[:5]))
        check(f"videomae {name}: every dropped key reported", dropped_in(err) == ignored,
              str(sorted(dropped_in(err) ^ ignored)[:5]))
    # a learnable pos_embed some VideoMAE variants carry is dropped, as the reference drops it
    src = path("vmae_pos.pth")
    torch.save({"model": dict(full, **{"encoder.pos_embed": torch.zeros(1, 32, 20)})}, src)
    rc, _, err = convert("videomae", src, path("vmae_pos.safetensors"), "--heads", 2)
    check("videomae: pos_embed dropped and reported", rc == 0 and "encoder.pos_embed" in dropped_in(err), err)

    # the converted files reproduce the PyTorch targets
    gen = torch.Generator().manual_seed(11)
    clip, image_input = make_fixtures.make_inputs(cfg, gen)
    want_img, want_vid = make_fixtures.teacher_targets(cfg, image_teacher, video_teacher, clip, image_input)
    it = ref.ImageTeacher(img_size=28, patch=7, dim=24, depth=2, heads=2)
    it.load_state_dict(load_file(path("mae_model.safetensors")), strict=True)
    vt = ref.VideoTeacher(patch=8, tubelet=2, dim=20, depth=2, heads=2, decoder_dim=16, decoder_depth=1,
                          decoder_heads=2)
    enc = {k[len("encoder."):]: v for k, v in load_file(path("vmae_model.safetensors")).items()}
    vt.encoder.load_state_dict(enc, strict=True)
    got_img, got_vid = make_fixtures.teacher_targets(cfg, it, vt, clip, image_input)
    check("converted MAE file reproduces the image targets", torch.equal(got_img, want_img))
    check("converted VideoMAE file reproduces the video targets", torch.equal(got_vid, want_vid))

    # the file set for a C test: converter output + expected targets
    out = path("converted_set")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        make_fixtures.write_converted_teachers(out)
    files = set(os.listdir(out))
    check("converted set files", {"image_teacher.safetensors", "video_teacher.safetensors", "io.safetensors",
                                  "config.json", "src"} <= files, str(files))
    io_t = load_file(os.path.join(out, "io.safetensors"))
    it.load_state_dict(load_file(os.path.join(out, "image_teacher.safetensors")), strict=True)
    vt.encoder.load_state_dict({k[len("encoder."):]: v for k, v in
                                load_file(os.path.join(out, "video_teacher.safetensors")).items()}, strict=True)
    gi, gv = make_fixtures.teacher_targets(cfg, it, vt, io_t["clip"], io_t["image_input"])
    check("converted set: targets reproduced from the converted files",
          torch.equal(gi.float(), io_t["target_img"]) and torch.equal(gv.float(), io_t["target_vid"]))


def test_student_round_trip():
    cfg, (student, _, _) = small_models()
    sd = student.state_dict()
    src, dst, back = path("student.pth"), path("student.safetensors"), path("student_back.pth")
    torch.save({"model": sd, "optimizer": {}, "epoch": 0, "args": None}, src)
    rc, _, err = convert("mvd-student", src, dst, "--heads", 2, "--decoder-heads", 2)
    check("student .pth -> safetensors", rc == 0, err)
    diff = same_tensors(load_file(dst), sd)
    check("student: every tensor kept and equal (pos tables included)", not diff, "; ".join(diff[:5]))
    check("student: nothing dropped", not dropped_in(err), err)
    with safe_open(dst, framework="pt") as f:
        conf = json.loads(f.metadata()["config"])
    check("student metadata config", conf["dim"] == 32 and conf["decoder_dim"] == 16 and conf["heads"] == 2 and
          conf["decoder_heads"] == 2 and conf["num_tokens"] == 32 and conf["target_dim_img"] == 24 and
          conf["target_dim_vid"] == 20, str(conf))
    rc, _, err = convert("mvd-student", dst, back, "--num-frames", 4, "--input-size", 32)
    check("student safetensors -> .pth", rc == 0, err)
    fresh = ref.MVDStudent(num_frames=4, img_size=32, patch=8, tubelet=2, dim=32, depth=2, heads=2, decoder_dim=16,
                           decoder_depth=2, decoder_heads=2, target_dim_img=24, target_dim_vid=20)
    obj = torch.load(back, map_location="cpu")
    try:
        fresh.load_state_dict(obj["model"], strict=True)
        loaded = True
    except RuntimeError as e:
        loaded = False
        print(e)
    check("student .pth loads with strict=True", loaded and list(obj) == ["model"])
    check("student round trip: all tensors equal", not same_tensors(fresh.state_dict(), sd))
    # the fixture file too (written by make_fixtures)
    fx = path("fixture_student.safetensors")
    save_file(make_fixtures.tensors_of(student), fx, metadata={"kind": "mvd-student"})
    rc, _, err = convert("mvd-student", fx, path("fixture_student.pth"))
    fresh2 = ref.MVDStudent(num_frames=4, img_size=32, patch=8, tubelet=2, dim=32, depth=2, heads=2,
                            decoder_dim=16, decoder_depth=2, decoder_heads=2, target_dim_img=24, target_dim_vid=20)
    ok = rc == 0
    if ok:
        fresh2.load_state_dict(torch.load(path("fixture_student.pth"))["model"], strict=True)
    check("fixture student.safetensors -> .pth -> strict load", ok and not same_tensors(fresh2.state_dict(), sd),
          err)
    rc, _, err = convert("mvd-student", dst, path("x.pth"), "--num-frames", 16, "--input-size", 224)
    check("student: token count checked against frames and size", rc == 1 and "num_tokens" in err, err)
    rc, _, err = convert("mae", dst, path("x.pth"))
    check("safetensors of another kind refused", rc == 1 and "mvd-student" in err, err)


def test_bad_inputs():
    _, (student, image_teacher, video_teacher) = small_models()
    full = ref.mae_pretrain_state_dict(image_teacher)

    def refused(kind, sd, needle, label, *extra):
        src, dst = path(f"bad_{label}.pth"), path(f"bad_{label}.safetensors")
        torch.save({"model": sd}, src)
        rc, _, err = convert(kind, src, dst, *extra)
        check(f"refused: {label}, naming {needle}", rc == 1 and needle in err and "error:" in err, err[-400:])
        check(f"refused: {label}, no output", not os.path.exists(dst))

    sd = dict(full)
    del sd["blocks.1.mlp.fc2.bias"]
    refused("mae", sd, "missing key blocks.1.mlp.fc2.bias", "mae-missing", "--heads", 2)
    sd = dict(full)
    sd["blocks.0.attn.proj.weight"] = sd["blocks.0.attn.proj.weight"][:, :20]
    refused("mae", sd, "blocks.0.attn.proj.weight has shape [24, 20]", "mae-shape", "--heads", 2)
    sd = dict(full, **{"fc_norm.weight": torch.ones(24)})
    refused("mae", sd, "unexpected key fc_norm.weight", "mae-unknown", "--heads", 2)
    refused("mae", dict(full), "dim is 24", "mae-size", "--size", "B")
    refused("mae", dict(full), "heads", "mae-heads", "--heads", 5)
    vsd = dict(video_teacher.state_dict())
    del vsd["encoder.blocks.0.attn.q_bias"]
    refused("videomae", vsd, "missing key encoder.blocks.0.attn.q_bias", "vmae-missing", "--heads", 2)
    vsd = dict(video_teacher.state_dict())
    vsd["encoder.blocks.1.mlp.fc1.weight"] = torch.zeros(80, 21)
    refused("videomae", vsd, "encoder.blocks.1.mlp.fc1.weight has shape [80, 21]", "vmae-shape")
    refused("videomae", dict(full), "missing key encoder.patch_embed.proj.weight", "vmae-wrong-kind")
    ssd = dict(student.state_dict())
    del ssd["mask_token_vid"]
    refused("mvd-student", ssd, "missing key mask_token_vid", "student-missing", "--heads", 2)
    ssd = dict(student.state_dict())
    ssd["pos_embed_img"] = torch.zeros(1, 31, 16)
    refused("mvd-student", ssd, "pos_embed_img has shape [1, 31, 16]", "student-shape", "--heads", 2)
    ssd = dict(student.state_dict())
    ssd["decoder_vid.blocks.0.attn.qkv.bias"] = torch.zeros(48)
    refused("mvd-student", ssd, "unexpected key decoder_vid.blocks.0.attn.qkv.bias", "student-unknown", "--heads", 2)
    refused("mvd-student", dict(student.state_dict()), "decoder attention heads", "student-no-heads", "--heads", 2)
    refused("videomae", dict(video_teacher.state_dict()), "number of attention heads for width 20", "vmae-no-heads")
    src = path("bad_list.pth")
    torch.save([1, 2], src)
    rc, _, err = convert("mae", src, path("bad_list.safetensors"))
    check("refused: not a dict", rc == 1 and "not a dict" in err, err)
    rc, _, err = convert("mae", path("does_not_exist.pth"), path("x.safetensors"))
    check("refused: missing file", rc == 1 and "no such file" in err, err)


def test_layouts_match_reference():
    _, (student, image_teacher, video_teacher) = small_models()
    for kind, sd, c in (
            ("mae", image_teacher.state_dict(), {"dim": 24, "depth": 2, "mlp_hidden": 96, "patch": 7}),
            ("videomae", {k: v for k, v in video_teacher.state_dict().items() if k.startswith("encoder.")},
             {"dim": 20, "depth": 2, "mlp_hidden": 80, "patch": 8, "tubelet": 2}),
            ("mvd-student", student.state_dict(),
             {"dim": 32, "depth": 2, "mlp_hidden": 128, "patch": 8, "tubelet": 2, "num_tokens": 32,
              "decoder_dim": 16, "decoder_depth": 2, "decoder_mlp_hidden": 64, "target_dim_img": 24,
              "target_dim_vid": 20})):
        layout = conv.LAYOUTS[kind](c)
        same_keys = set(layout) == set(sd)
        shapes = [k for k, s in layout.items() if s is not None and k in sd and tuple(sd[k].shape) != s]
        check(f"{kind} layout = reference state dict", same_keys and not shapes,
              f"{sorted(set(layout) ^ set(sd))[:5]} {shapes[:5]}")
    # published sizes: a ViT-B student layout has the documented counts
    b = conv.LAYOUTS["mvd-student"]({"dim": 768, "depth": 12, "mlp_hidden": 3072, "patch": 16, "tubelet": 2,
                                     "num_tokens": 1568, "decoder_dim": 768, "decoder_depth": 2,
                                     "decoder_mlp_hidden": 3072, "target_dim_img": 768, "target_dim_vid": 768})
    n = sum(int(torch.Size(s).numel()) for k, s in b.items() if not k.startswith("pos_embed"))
    per_decoder = 1 + 2 + 2 * 13 + 2 + 2 + 1  # mask token, down, 2 blocks, norm, head, table
    check("ViT-B student + two 2-block decoders: key and parameter counts",
          len(b) == 1 + 2 + 12 * 13 + 2 + 2 * per_decoder and 100e6 < n < 130e6, f"{len(b)} keys, {n} params")


def test_help():
    r = subprocess.run([sys.executable, SCRIPT, "--help"], capture_output=True, text=True)
    check("--help exits 0 and names the kinds", r.returncode == 0 and all(k in r.stdout for k in conv.KINDS),
          r.stderr)


if __name__ == "__main__":
    for t in (test_mae_variants, test_videomae_and_targets, test_student_round_trip, test_bad_inputs,
              test_layouts_match_reference, test_help):
        run(t)
    summary()
