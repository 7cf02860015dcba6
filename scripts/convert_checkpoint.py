#!/usr/bin/env python3
"""Converts reference PyTorch checkpoints (.pth) to the project's safetensors files, and back.

    convert_checkpoint.py KIND SRC.pth DST.safetensors [options]     .pth -> safetensors
    convert_checkpoint.py KIND SRC.safetensors DST.pth [options]     safetensors -> .pth ({'model': state_dict})

KIND
  mae          image teacher from an MAE pretrain checkpoint (cls_token, pos_embed, patch_embed.proj.*,
               blocks.N.* with attn.qkv.bias, norm.*). Dropped: the MAE decoder (decoder_*, mask_token) and
               head.* (as the reference does). pos_embed is KEPT verbatim: it belongs to the MAE layout and lets
               PyTorch load the file back, but no teacher uses it: like the reference (which drops it while
               loading), the forward recomputes the 2-D sin-cos table at the teacher's input size, and the C
               loader ignores the key.
  videomae     video teacher from a VideoMAE pretrain checkpoint (encoder.*). Dropped: decoder.*,
               encoder_to_decoder.*, mask_token, and any key containing 'pos_embed' (the table is computed).
  mvd-student  MVD student (encoder, down_img/down_vid, mask tokens, the fixed tables pos_embed, pos_embed_img,
               pos_embed_vid, decoder_img.*, decoder_vid.*). Nothing is dropped.

Input: a dict with a 'model' entry, else a 'module' entry (the reference's --model_key 'model|module'), else a bare
state dict. The 'backbone.' prefix is stripped (as the reference does for teachers); --strip-prefix adds others
(e.g. 'module.' for a state dict saved from a DistributedDataParallel wrapper, which the reference does not
strip). Every dropped key is reported on stderr.

Validation: the layout (every key and shape) expected for the kind is built from the checkpoint's own sizes
(width from the patch embedding, depth from the block indices, ...) or from --size, and the checkpoint must match it
exactly: a missing key, an unknown key or a wrong shape is an error naming the key. The reference loads teachers
non-strictly (a wrong file only prints a warning); this converter refuses instead.

Output: float32 tensors; metadata kind, source (path), source_sha256 (of the source file), config (JSON: the
sizes, including the head counts, which shapes cannot reveal), dropped_keys (JSON list).

.pth files are Python pickles: convert only files from a source you trust.
"""
import argparse
import hashlib
import json
import os
import re
import sys
from collections import OrderedDict

KINDS = ("mae", "videomae", "mvd-student")

# Published sizes: (dim, depth, heads, patch) for teachers; the student adds its decoder (dim, depth, heads).
MAE_SIZES = {"B": (768, 12, 12, 16), "L": (1024, 24, 16, 16), "H": (1280, 32, 16, 14)}
VIDEOMAE_SIZES = {"S": (384, 12, 6, 16), "B": (768, 12, 12, 16), "L": (1024, 24, 16, 16), "H": (1280, 32, 16, 16)}
STUDENT_SIZES = {"S": (384, 12, 6, 16, (384, 2, 6)), "B": (768, 12, 12, 16, (768, 2, 12)),
                 "L": (1024, 24, 16, 16, (512, 4, 8)), "H": (1280, 32, 16, 16, (640, 8, 8))}
HEADS_BY_DIM = {192: 3, 384: 6, 512: 8, 640: 8, 768: 12, 1024: 16, 1280: 16}


class ConversionError(Exception):
    pass


# ------------------------------------------------------------------------------------------------------------
# Expected layouts: key -> shape (None = checked separately)
# ------------------------------------------------------------------------------------------------------------
def block_layout(prefix, dim, hidden, split_bias):
    lay = OrderedDict()
    lay[prefix + "norm1.weight"] = (dim,)
    lay[prefix + "norm1.bias"] = (dim,)
    if split_bias:
        lay[prefix + "attn.q_bias"] = (dim,)
        lay[prefix + "attn.v_bias"] = (dim,)
        lay[prefix + "attn.qkv.weight"] = (3 * dim, dim)
    else:
        lay[prefix + "attn.qkv.weight"] = (3 * dim, dim)
        lay[prefix + "attn.qkv.bias"] = (3 * dim,)
    lay[prefix + "attn.proj.weight"] = (dim, dim)
    lay[prefix + "attn.proj.bias"] = (dim,)
    lay[prefix + "norm2.weight"] = (dim,)
    lay[prefix + "norm2.bias"] = (dim,)
    lay[prefix + "mlp.fc1.weight"] = (hidden, dim)
    lay[prefix + "mlp.fc1.bias"] = (hidden,)
    lay[prefix + "mlp.fc2.weight"] = (dim, hidden)
    lay[prefix + "mlp.fc2.bias"] = (dim,)
    return lay


def mae_layout(c):
    d = c["dim"]
    lay = OrderedDict()
    lay["cls_token"] = (1, 1, d)
    lay["pos_embed"] = None  # [1, 1 + g*g, d], any grid: unused (recomputed at the input size)
    lay["patch_embed.proj.weight"] = (d, 3, c["patch"], c["patch"])
    lay["patch_embed.proj.bias"] = (d,)
    for i in range(c["depth"]):
        lay.update(block_layout(f"blocks.{i}.", d, c["mlp_hidden"], False))
    lay["norm.weight"] = (d,)
    lay["norm.bias"] = (d,)
    return lay


def videomae_layout(c):
    d = c["dim"]
    lay = OrderedDict()
    lay["encoder.patch_embed.proj.weight"] = (d, 3, c["tubelet"], c["patch"], c["patch"])
    lay["encoder.patch_embed.proj.bias"] = (d,)
    for i in range(c["depth"]):
        lay.update(block_layout(f"encoder.blocks.{i}.", d, c["mlp_hidden"], True))
    lay["encoder.norm.weight"] = (d,)
    lay["encoder.norm.bias"] = (d,)
    return lay


def student_layout(c):
    d, dd, n = c["dim"], c["decoder_dim"], c["num_tokens"]
    lay = OrderedDict()
    lay["pos_embed"] = (1, n, d)
    lay["patch_embed.proj.weight"] = (d, 3, c["tubelet"], c["patch"], c["patch"])
    lay["patch_embed.proj.bias"] = (d,)
    for i in range(c["depth"]):
        lay.update(block_layout(f"blocks.{i}.", d, c["mlp_hidden"], True))
    lay["norm.weight"] = (d,)
    lay["norm.bias"] = (d,)
    for branch, target in (("img", c["target_dim_img"]), ("vid", c["target_dim_vid"])):
        lay[f"mask_token_{branch}"] = (1, 1, dd)
        lay[f"down_{branch}.weight"] = (dd, d)
        lay[f"down_{branch}.bias"] = (dd,)
        for i in range(c["decoder_depth"]):
            lay.update(block_layout(f"decoder_{branch}.blocks.{i}.", dd, c["decoder_mlp_hidden"], True))
        lay[f"decoder_{branch}.norm.weight"] = (dd,)
        lay[f"decoder_{branch}.norm.bias"] = (dd,)
        lay[f"decoder_{branch}.head.weight"] = (target, dd)
        lay[f"decoder_{branch}.head.bias"] = (target,)
        lay[f"pos_embed_{branch}"] = (1, n, dd)
    return lay


LAYOUTS = {"mae": mae_layout, "videomae": videomae_layout, "mvd-student": student_layout}


def dropped_reason(kind, key):
    """Why a key a teacher ignores is dropped, or None when the key must be validated."""
    if kind == "mae":
        if key.startswith("decoder_") or key == "mask_token":
            return "MAE decoder"
        if key.startswith("head."):
            return "classification head (removed by the reference)"
    elif kind == "videomae":
        if key.startswith("decoder.") or key.startswith("encoder_to_decoder.") or key == "mask_token":
            return "VideoMAE decoder"
        if "pos_embed" in key:
            return "position table (computed by the teacher; dropped by the reference)"
        if key.startswith("head."):
            return "classification head (removed by the reference)"
    return None


# ------------------------------------------------------------------------------------------------------------
# Reading sizes off a state dict
# ------------------------------------------------------------------------------------------------------------
def _need(sd, key, what):
    if key not in sd:
        hint = ""
        near = sorted(k for k in sd if k.endswith("." + key))
        if near:
            prefix = near[0][:-len(key)]
            hint = f"; found {near[0]}: strip its prefix with --strip-prefix {prefix}"
        raise ConversionError(f"missing key {key} (needed to read {what}){hint}")
    return tuple(sd[key].shape)


def _count_blocks(sd, prefix):
    pat = re.compile(re.escape(prefix) + r"(\d+)\.")
    idx = {int(m.group(1)) for k in sd for m in [pat.match(k)] if m}
    return max(idx) + 1 if idx else 0


def _heads(explicit, size_table_value, dim, what):
    heads = explicit or size_table_value or HEADS_BY_DIM.get(dim)
    if not heads:
        raise ConversionError(f"cannot tell the number of {what} heads for width {dim}: pass it")
    if dim % heads:
        raise ConversionError(f"{what} width {dim} is not a multiple of {heads} heads")
    return heads


def _pin(c, key, want, source):
    if want is not None and c[key] != want:
        raise ConversionError(f"{key} is {c[key]} in the checkpoint, {want} expected ({source})")


def read_config(kind, sd, args):
    """The sizes of the model in sd, checked against --size and explicit options; the head counts (which the
    shapes cannot show) are resolved by finish_config once the layout is known to be right."""
    size = getattr(args, "size", None)
    c = {}
    if kind == "mae":
        w = _need(sd, "patch_embed.proj.weight", "the width and patch size")
        c.update(dim=w[0], patch=w[-1], depth=_count_blocks(sd, "blocks."))
        c["mlp_hidden"] = _need(sd, "blocks.0.mlp.fc1.weight", "the MLP width")[0]
        table = MAE_SIZES.get(size) if size else None
        if size and not table:
            raise ConversionError(f"--size {size} is not an MAE size ({', '.join(MAE_SIZES)})")
        if table:
            for k, v in zip(("dim", "depth", "heads", "patch"), table):
                if k != "heads":
                    _pin(c, k, v, f"--size {size}")
        c["_heads"] = lambda: {"heads": _heads(args.heads, table[2] if table else None, c["dim"], "attention")}
    elif kind == "videomae":
        w = _need(sd, "encoder.patch_embed.proj.weight", "the width, tubelet and patch size")
        if len(w) != 5:
            raise ConversionError(f"encoder.patch_embed.proj.weight has shape {list(w)}, a 5-D tubelet kernel expected")
        c.update(dim=w[0], tubelet=w[2], patch=w[-1], depth=_count_blocks(sd, "encoder.blocks."))
        c["mlp_hidden"] = _need(sd, "encoder.blocks.0.mlp.fc1.weight", "the MLP width")[0]
        table = VIDEOMAE_SIZES.get(size) if size else None
        if size and not table:
            raise ConversionError(f"--size {size} is not a VideoMAE size ({', '.join(VIDEOMAE_SIZES)})")
        if table:
            for k, v in zip(("dim", "depth", "heads", "patch"), table):
                if k != "heads":
                    _pin(c, k, v, f"--size {size}")
        c["_heads"] = lambda: {"heads": _heads(args.heads, table[2] if table else None, c["dim"], "attention")}
    else:
        w = _need(sd, "patch_embed.proj.weight", "the width, tubelet and patch size")
        if len(w) != 5:
            raise ConversionError(f"patch_embed.proj.weight has shape {list(w)}, a 5-D tubelet kernel expected")
        c.update(dim=w[0], tubelet=w[2], patch=w[-1], depth=_count_blocks(sd, "blocks."))
        c["mlp_hidden"] = _need(sd, "blocks.0.mlp.fc1.weight", "the MLP width")[0]
        c["num_tokens"] = _need(sd, "pos_embed", "the token count")[1]
        c["decoder_dim"] = _need(sd, "down_img.weight", "the decoder width")[0]
        c["decoder_depth"] = _count_blocks(sd, "decoder_img.blocks.")
        c["decoder_mlp_hidden"] = _need(sd, "decoder_img.blocks.0.mlp.fc1.weight", "the decoder MLP width")[0]
        c["target_dim_img"] = _need(sd, "decoder_img.head.weight", "the image target width")[0]
        c["target_dim_vid"] = _need(sd, "decoder_vid.head.weight", "the video target width")[0]
        table = STUDENT_SIZES.get(size) if size else None
        if size and not table:
            raise ConversionError(f"--size {size} is not a student size ({', '.join(STUDENT_SIZES)})")
        if table:
            for k, v in zip(("dim", "depth", "patch"), (table[0], table[1], table[3])):
                _pin(c, k, v, f"--size {size}")
            _pin(c, "decoder_dim", table[4][0], f"--size {size}")
            _pin(c, "decoder_depth", table[4][1], f"--size {size}")

        def student_heads():
            heads = _heads(args.heads, table[2] if table else None, c["dim"], "attention")
            dec_default = table[4][2] if table else (heads if c["decoder_dim"] == c["dim"] else None)
            return {"heads": heads,
                    "decoder_heads": _heads(args.decoder_heads, dec_default, c["decoder_dim"], "decoder attention")}
        c["_heads"] = student_heads
        if args.num_frames or args.input_size:
            frames = args.num_frames or 16
            side = args.input_size or 224
            want = (frames // c["tubelet"]) * (side // c["patch"]) ** 2
            _pin(c, "num_tokens", want, f"{frames} frames of {side} px")
    if c["depth"] == 0:
        raise ConversionError("no transformer blocks found")
    for key in ("dim", "depth", "patch", "tubelet"):
        if key in c:
            _pin(c, key, getattr(args, key, None), f"--{key}")
    return c


# ------------------------------------------------------------------------------------------------------------
# Conversion
# ------------------------------------------------------------------------------------------------------------
def select_state_dict(obj):
    """(state_dict, where): the 'model' entry, else 'module', else the object itself."""
    if not isinstance(obj, dict):
        raise ConversionError(f"the checkpoint is a {type(obj).__name__}, not a dict")
    for key in ("model", "module"):
        if key in obj and isinstance(obj[key], dict):
            return obj[key], f"entry '{key}'"
    return obj, "bare state dict"


def strip_prefixes(sd, prefixes):
    out = OrderedDict()
    for k, v in sd.items():
        for p in prefixes:
            if k.startswith(p):
                k = k[len(p):]
                break
        if k in out:
            raise ConversionError(f"key {k} appears twice after stripping prefixes")
        out[k] = v
    return out


def finish_config(config):
    """Adds the head counts (from --heads / --decoder-heads, --size, or the published count for the width)."""
    config = dict(config)
    config.update(config.pop("_heads")())
    return config


def validate(kind, sd, config):
    """Raises ConversionError naming every missing key, unknown key and wrong shape."""
    import torch
    layout = LAYOUTS[kind](config)
    problems = []
    for key, shape in layout.items():
        if key not in sd:
            problems.append(f"missing key {key}" + (f" (expected shape {list(shape)})" if shape else ""))
            continue
        t = sd[key]
        if not isinstance(t, torch.Tensor):
            problems.append(f"key {key} is a {type(t).__name__}, not a tensor")
        elif shape is None:  # MAE pos_embed: [1, 1 + g*g, dim]
            s = tuple(t.shape)
            g = int(round(max(s[1] - 1, 0) ** 0.5)) if len(s) == 3 else -1
            if len(s) != 3 or s[0] != 1 or s[2] != config["dim"] or g * g != s[1] - 1:
                problems.append(f"key {key} has shape {list(s)}, expected [1, 1+g*g, {config['dim']}]")
        elif tuple(t.shape) != shape:
            problems.append(f"key {key} has shape {list(t.shape)}, expected {list(shape)}")
    for key in sd:
        if key not in layout:
            problems.append(f"unexpected key {key} (not part of the {kind} layout)")
    if problems:
        raise ConversionError(f"{len(problems)} problem(s) in the {kind} checkpoint:\n  " + "\n  ".join(problems))
    return layout


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _atomic(path, write):
    tmp = path + ".tmp"
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def to_safetensors(kind, src, dst, args, log=None):
    log = log or sys.stderr
    import torch
    from safetensors.torch import save_file
    obj = torch.load(src, map_location="cpu")
    sd, where = select_state_dict(obj)
    sd = strip_prefixes(sd, ["backbone."] + list(args.strip_prefix or []))
    kept, dropped = OrderedDict(), []
    for k, v in sd.items():
        reason = dropped_reason(kind, k)
        if reason:
            dropped.append(k)
            print(f"dropped {k}: {reason}", file=log)
        else:
            kept[k] = v
    config = read_config(kind, kept, args)
    layout = validate(kind, kept, config)
    config = finish_config(config)
    tensors, recast = OrderedDict(), []
    for k in layout:
        t = kept[k].detach()
        if t.dtype != torch.float32:
            recast.append(f"{k} ({t.dtype})")
            t = t.float()
        tensors[k] = t.contiguous().clone()
    for r in recast:
        print(f"converted to float32: {r}", file=log)
    meta = {"kind": kind, "source": os.path.abspath(src), "source_sha256": sha256_of(src),
            "source_entry": where, "config": json.dumps(config, sort_keys=True), "dropped_keys": json.dumps(dropped)}
    if kind == "mae":
        meta["pos_embed"] = "kept from the source; unused: teachers recompute the 2-D table at their input size"
    _atomic(dst, lambda p: save_file(tensors, p, metadata=meta))
    print(f"{kind}: {len(tensors)} tensors written to {dst}, {len(dropped)} key(s) dropped ({where})")
    return tensors, dropped, meta


def to_pth(kind, src, dst, args):
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file
    sd = OrderedDict(load_file(src))
    with safe_open(src, framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("kind") and meta["kind"] != kind:
        raise ConversionError(f"{src} holds a '{meta['kind']}' checkpoint, not '{kind}'")
    config = read_config(kind, sd, args)
    layout = validate(kind, sd, config)  # head counts are not needed to write a state dict
    state = OrderedDict((k, sd[k]) for k in layout)
    _atomic(dst, lambda p: torch.save({"model": state}, p))
    print(f"{kind}: {len(state)} tensors written to {dst} as {{'model': state_dict}}")
    return state


def build_parser():
    ap = argparse.ArgumentParser(
        prog="convert_checkpoint.py",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=KINDS, help="what the checkpoint holds")
    ap.add_argument("src", help="source: .pth (to safetensors) or .safetensors (to .pth)")
    ap.add_argument("dst", help="destination file")
    ap.add_argument("--size", help="published size to check against (mae: B L H; videomae: S B L H; "
                                   "mvd-student: S B L H); default: read the sizes off the checkpoint")
    ap.add_argument("--heads", type=int, help="attention heads (default: from --size or the usual count for the width)")
    ap.add_argument("--decoder-heads", type=int, help="mvd-student: decoder attention heads")
    ap.add_argument("--dim", type=int, help="expected width")
    ap.add_argument("--depth", type=int, help="expected number of blocks")
    ap.add_argument("--patch", type=int, help="expected patch size")
    ap.add_argument("--tubelet", type=int, help="expected tubelet size (videomae, mvd-student)")
    ap.add_argument("--num-frames", type=int, help="mvd-student: frames per clip, checked against pos_embed")
    ap.add_argument("--input-size", type=int, help="mvd-student: clip side in pixels, checked against pos_embed")
    ap.add_argument("--strip-prefix", action="append", metavar="PREFIX",
                    help="also strip this key prefix (repeatable); 'backbone.' is always stripped")
    return ap


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        if not os.path.isfile(args.src):
            raise ConversionError(f"no such file: {args.src}")
        if args.src.endswith(".safetensors"):
            to_pth(args.kind, args.src, args.dst, args)
        else:
            to_safetensors(args.kind, args.src, args.dst, args)
    except ConversionError as e:
        print(f"error: {args.src}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
