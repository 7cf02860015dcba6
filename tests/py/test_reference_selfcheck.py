#!/usr/bin/env python3
"""Self-checks of the PyTorch oracle (tests/reference/mvd_reference.py) against independent computations:
position tables against element-by-element transcriptions of the formulas in MVD_REFERENCE.md, attention
against torch's multi_head_attention_forward and a naive loop, the tubelet embedding against a GEMM over
flattened tubelets, the loss against torch's smooth_l1_loss, the AdamW groups against the rules, one AdamW step
against the update formula, the schedule against its formula, drop path and masking semantics, and the
oracle's gradients against torch.autograd.gradcheck in float64."""
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mvd_reference as ref  # noqa: E402
from harness import check, run, summary  # noqa: E402

torch.set_num_threads(1)  # many tiny ops: one thread avoids spinning on a shared machine
D64 = torch.float64


def maxdiff(a, b):
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))


# ---- independent transcriptions, one element at a time -----------------------------------------------------
def naive_1d(width, p, j):
    """Element j of the block 1-D table at position p: sines for j < width/2, then cosines."""
    half = width // 2
    k = j % half
    angle = p * (1.0 / 10000 ** (k / half))
    return math.sin(angle) if j < half else math.cos(angle)


def naive_3d(width, t_size, grid):
    out = np.zeros((t_size * grid * grid, width))
    dt, ds = width // 4, width // 4 * 3
    for t in range(t_size):
        for h in range(grid):
            for w in range(grid):
                row = (t * grid + h) * grid + w
                for j in range(width):
                    if j < dt:
                        out[row, j] = naive_1d(dt, t, j)
                    elif j < dt + ds // 2:
                        out[row, j] = naive_1d(ds // 2, w, j - dt)        # w first
                    else:
                        out[row, j] = naive_1d(ds // 2, h, j - dt - ds // 2)
    return out


def naive_2d(width, grid):
    out = np.zeros((1 + grid * grid, width))  # row 0: cls, zeros
    for h in range(grid):
        for w in range(grid):
            for j in range(width):
                out[1 + h * grid + w, j] = (naive_1d(width // 2, w, j) if j < width // 2
                                            else naive_1d(width // 2, h, j - width // 2))
    return out


def naive_videomae(n, width):
    out = np.zeros((n, width))
    for p in range(n):
        for j in range(width):
            angle = p / 10000 ** (2 * (j // 2) / width)
            out[p, j] = math.sin(angle) if j % 2 == 0 else math.cos(angle)
    return out


def test_position_tables():
    for width, t, g in [(16, 2, 4), (32, 2, 4), (64, 8, 14), (48, 3, 5)]:
        d = maxdiff(ref.mvd_3d_table(width, t, g), naive_3d(width, t, g))
        check(f"3-D table D={width} T={t} g={g}", d < 1e-12, f"max diff {d:g}")
    for width, g in [(24, 4), (48, 14), (768, 14)]:
        d = maxdiff(ref.mae_2d_table(width, g, cls_row=True), naive_2d(width, g))
        check(f"2-D table D={width} g={g}", d < 1e-12, f"max diff {d:g}")
    for n, width in [(32, 20), (1568, 40), (50, 7)]:
        d = maxdiff(ref.videomae_1d_table(n, width), naive_videomae(n, width))
        check(f"VideoMAE 1-D table N={n} D={width}", d < 1e-12, f"max diff {d:g}")
    # spot values: row 0 of the 3-D table is sin(0)=0 / cos(0)=1 blocks
    row0 = ref.mvd_3d_table(32, 2, 4)[0]
    want = np.array([0] * 4 + [1] * 4 + ([0] * 6 + [1] * 6) * 2, dtype=np.float64)
    check("3-D table row 0 = [0..,1..] blocks", maxdiff(row0, want) == 0.0, str(row0))
    # the student's stored tables are the 3-D tables (as float32) at each width
    m = tiny_student()
    for name, width in (("pos_embed", 32), ("pos_embed_img", 16), ("pos_embed_vid", 16)):
        p = getattr(m, name)
        d = maxdiff(p.detach()[0].numpy(), ref.mvd_3d_table(width, 2, 4))
        check(f"student {name} is the 3-D table", d < 1e-7 and not p.requires_grad and p.shape == (1, 32, width),
              f"diff {d:g}, shape {tuple(p.shape)}")
    for bad in (8, 20):
        try:
            ref.mvd_3d_table(bad, 2, 2)
            check(f"3-D table rejects width {bad}", False)
        except ValueError:
            check(f"3-D table rejects width {bad}", True)


def tiny_student(drop_path=0.0, depth=2, decoder_depth=2, dim=32, ddim=16, frames=4, size=32, patch=8):
    torch.manual_seed(0)
    return ref.MVDStudent(num_frames=frames, img_size=size, patch=patch, tubelet=2, dim=dim, depth=depth, heads=2,
                          decoder_dim=ddim, decoder_depth=decoder_depth, decoder_heads=2, target_dim_img=24,
                          target_dim_vid=20, drop_path=drop_path)


def randomize(module, scale=0.1):
    with torch.no_grad():
        for n, p in module.named_parameters():
            if p.requires_grad:
                p.add_(scale * torch.randn_like(p))


def test_attention():
    torch.manual_seed(1)
    for split in (True, False):
        attn = ref.Attention(24, 3, split_bias=split).double()
        randomize(attn, 0.2)
        x = torch.randn(2, 7, 24, dtype=D64)
        ours = attn(x)
        bias = attn.qkv_bias()
        theirs, _ = F.multi_head_attention_forward(
            x.transpose(0, 1), x.transpose(0, 1), x.transpose(0, 1), 24, 3, attn.qkv.weight, bias, None, None,
            False, 0.0, attn.proj.weight, attn.proj.bias, training=False, need_weights=False)
        d = float((ours - theirs.transpose(0, 1)).abs().max())
        check(f"attention (split_bias={split}) vs multi_head_attention_forward", d < 1e-12, f"max diff {d:g}")
        if split:
            check("k bias is zero", float(bias[24:48].abs().max()) == 0.0)
        # naive loop: per sample, head, query
        w, hd = attn.qkv.weight, 8
        out = torch.zeros(2, 7, 24, dtype=D64)
        for b in range(2):
            qkv = x[b] @ w.T + bias
            for h in range(3):
                q = qkv[:, h * hd:(h + 1) * hd]
                k = qkv[:, 24 + h * hd:24 + (h + 1) * hd]
                v = qkv[:, 48 + h * hd:48 + (h + 1) * hd]
                for i in range(7):
                    s = [float(q[i] @ k[j]) / math.sqrt(hd) for j in range(7)]
                    mx = max(s)
                    e = [math.exp(z - mx) for z in s]
                    for j in range(7):
                        out[b, i, h * hd:(h + 1) * hd] += e[j] / sum(e) * v[j]
        naive = out @ attn.proj.weight.T + attn.proj.bias
        d = float((ours - naive).abs().max())
        check(f"attention (split_bias={split}) vs naive loop", d < 1e-12, f"max diff {d:g}")


def test_block_and_drop_path():
    torch.manual_seed(2)
    blk = ref.Block(16, 2, 4.0, split_bias=True, drop_path=0.25).double()
    randomize(blk)
    x = torch.randn(3, 5, 16, dtype=D64)
    keep = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]], dtype=D64)
    y = blk(x, keep)
    ln = lambda m, z: F.layer_norm(z, (16,), m.weight, m.bias, 1e-6)  # noqa: E731
    a = blk.attn(ln(blk.norm1, x))
    x1 = x + a * (keep[0] / 0.75).view(-1, 1, 1)
    hmid = F.gelu(ln(blk.norm2, x1) @ blk.mlp.fc1.weight.T + blk.mlp.fc1.bias)
    m = hmid @ blk.mlp.fc2.weight.T + blk.mlp.fc2.bias
    want = x1 + m * (keep[1] / 0.75).view(-1, 1, 1)
    d = float((y - want).abs().max())
    check("block with drop decisions = manual pre-norm block, kept branch / (1 - rate)", d < 1e-12, f"{d:g}")
    check("all kept = inference forward scaled by 1/(1-rate) on both branches",
          float((blk(x, torch.ones(2, 3, dtype=D64)) - manual_scaled(blk, x, 1 / 0.75)).abs().max()) < 1e-12)
    blk0 = ref.Block(16, 2, 4.0, drop_path=0.0).double()
    check("rate 0 block ignores decisions", float((blk0(x, torch.zeros(2, 3, dtype=D64)) - blk0(x)).abs().max()) == 0)
    check("GELU is the exact (erf) one", float((F.gelu(torch.tensor(1.0, dtype=D64)) -
                                                0.5 * (1 + math.erf(1 / math.sqrt(2)))).abs()) < 1e-15)
    check("drop path rates linspace(0, r, depth)", ref.drop_path_rates(0.3, 3) == [0.0, 0.15, 0.3]
          and ref.drop_path_rates(0.1, 1) == [0.0])
    m = tiny_student(drop_path=0.3, depth=3, decoder_depth=2)
    check("student block rates: encoder and each decoder separately", m.block_rates() ==
          [0.0, 0.15, 0.3, 0.0, 0.3, 0.0, 0.3], str(m.block_rates()))


def manual_scaled(blk, x, scale):
    x = x + scale * blk.attn(blk.norm1(x))
    return x + scale * blk.mlp(blk.norm2(x))


def test_patch_embed_gemm():
    torch.manual_seed(3)
    pe = ref.PatchEmbed3d(8, 4, 2).double()
    x = torch.randn(2, 3, 4, 8, 12, dtype=D64)
    ours = pe(x)  # [B, N, D]
    rows = []
    for b in range(2):
        for t in range(2):
            for h in range(2):
                for w in range(3):
                    rows.append(x[b, :, 2 * t:2 * t + 2, 4 * h:4 * h + 4, 4 * w:4 * w + 4].reshape(-1))
    flat = torch.stack(rows).view(2, 12, -1)  # tubelets flattened in (c, t, h, w) order, tokens in (t, h, w)
    want = flat @ pe.proj.weight.view(8, -1).T + pe.proj.bias
    d = float((ours - want).abs().max())
    check("tubelet embedding = GEMM over (c,t,h,w)-flattened tubelets, tokens (t,h,w)", d < 1e-12, f"{d:g}")


def test_teachers():
    torch.manual_seed(4)
    it = ref.ImageTeacher(img_size=28, patch=7, dim=24, depth=2, heads=2).double()
    randomize(it)
    with torch.no_grad():
        it.pos_embed.fill_(123.0)  # the forward must not use the stored table
    clip = torch.randn(2, 3, 4, 28, 28, dtype=D64)
    frames = ref.image_teacher_frames(clip, 2)
    check("image frames: [B*T', 3, S, S]", tuple(frames.shape) == (4, 3, 28, 28))
    check("image frames: clip-major, frames 0, tubelet, ...",
          torch.equal(frames[1], clip[0, :, 2]) and torch.equal(frames[2], clip[1, :, 0]))
    out = ref.image_teacher_targets(it, frames, 2)
    check("image targets [B, T'*g*g, D]", tuple(out.shape) == (2, 32, 24), str(tuple(out.shape)))
    # manual: per frame, patch tokens + 2-D table, cls + zero row, blocks, no final norm, cls dropped
    b, t = 1, 1
    img = clip[b, :, 2 * t][None]
    x = it.patch_embed(img) + torch.from_numpy(naive_2d(24, 4)[1:])[None]
    x = torch.cat([it.cls_token.expand(1, -1, -1), x], 1)
    for blk in it.blocks:
        x = blk(x)
    d = float((out[b, t * 16:(t + 1) * 16] - x[0, 1:]).abs().max())
    check("image target slice t = frame 2t, last block before norm, 2-D table recomputed", d < 1e-12, f"{d:g}")

    vt = ref.VideoTeacher(patch=8, tubelet=2, dim=20, depth=2, heads=2, decoder_dim=16, decoder_depth=1,
                          decoder_heads=2).double()
    randomize(vt)
    clip = torch.randn(1, 3, 4, 32, 32, dtype=D64)
    x = vt.encoder.patch_embed(clip) + torch.from_numpy(naive_videomae(32, 20))[None]
    for blk in vt.encoder.blocks:
        x = blk(x)
    d = float((vt(clip) - x).abs().max())
    check("video target = encoder last block before encoder.norm, 1-D table", d < 1e-12, f"{d:g}")
    keys = set(vt.state_dict())
    check("video teacher has the pretrain checkpoint's decoder keys",
          {"mask_token", "encoder_to_decoder.weight", "decoder.head.weight", "decoder.norm.weight",
           "encoder.norm.weight", "encoder.blocks.0.attn.q_bias"} <= keys and
          not any("pos_embed" in k for k in keys) and "encoder_to_decoder.bias" not in keys)
    check("video decoder head predicts 3*tubelet*patch^2 pixels", vt.decoder.head.weight.shape[0] == 3 * 2 * 64)


def test_masking_and_student():
    gen = torch.Generator().manual_seed(5)
    mask = ref.tube_mask(3, 8, 14, 0.9, gen)
    check("tube mask: 1408 masked of 1568 per sample", mask.shape == (3, 1568) and
          all(int(r.sum()) == 1408 for r in mask), str(mask.sum(1)))
    check("tube mask repeats over t", all(torch.equal(r.view(8, 196)[0], r.view(8, 196)[k]) for r in mask
                                          for k in range(8)))
    check("tube masks differ per sample", not torch.equal(mask[0], mask[1]))

    m = tiny_student().double().eval()
    randomize(m)
    gen = torch.Generator().manual_seed(6)
    mask = ref.tube_mask(2, 2, 4, 0.75, gen)
    clip = torch.randn(2, 3, 4, 32, 32, dtype=D64)
    pi, pv = m(clip, mask)
    check("predictions for the masked tokens", tuple(pi.shape) == (2, 24, 24) and tuple(pv.shape) == (2, 24, 20))
    # pixels of masked tubelets must not change anything: the encoder sees visible tokens only
    clip2 = clip.clone()
    tok = mask.view(2, 2, 4, 4)
    for b in range(2):
        for t in range(2):
            for h in range(4):
                for w in range(4):
                    if tok[b, t, h, w]:
                        clip2[b, :, 2 * t:2 * t + 2, 8 * h:8 * h + 8, 8 * w:8 * w + 8] = 99.0
    pi2, pv2 = m(clip2, mask)
    check("masked pixels do not reach the encoder", float((pi - pi2).abs().max()) == 0.0)
    # manual decoder order: visible first then masked, outputs of the last Nm positions
    x = m.forward_encoder(clip, mask)
    b = 1
    vis, msk = (~mask[b]).nonzero().view(-1), mask[b].nonzero().view(-1)
    seq = torch.cat([m.down_img(x[b]) + m.pos_embed_img[0, vis], m.mask_token_img[0] + m.pos_embed_img[0, msk]])
    seq = seq[None]
    for blk in m.decoder_img.blocks:
        seq = blk(seq)
    want = m.decoder_img.head(m.decoder_img.norm(seq[0, len(vis):]))
    d = float((pi[b] - want).abs().max())
    check("decoder: [visible + pos, mask token + pos], norm+head on the masked tail", d < 1e-12, f"{d:g}")


def test_loss():
    torch.manual_seed(7)
    p, t = torch.randn(2, 5, 6, dtype=D64) * 2, torch.randn(2, 5, 6, dtype=D64) * 2
    d = float((ref.smooth_l1(p, t) - F.smooth_l1_loss(p, t, beta=1.0)).abs())
    check("smooth L1 = torch smooth_l1_loss (beta 1, mean)", d < 1e-14, f"{d:g}")
    mask = torch.zeros(2, 8, dtype=torch.bool)
    mask[0, [1, 4, 6, 7, 0]] = True
    mask[1, [0, 2, 3, 5, 6]] = True
    ti, tv = torch.randn(2, 8, 6, dtype=D64), torch.randn(2, 8, 3, dtype=D64)
    pi, pv = torch.randn(2, 5, 6, dtype=D64), torch.randn(2, 5, 3, dtype=D64)
    loss, li, lv = ref.mvd_loss(pi, pv, ti, tv, mask, 0.7, 1.3)
    gi = torch.stack([ti[b][mask[b]] for b in range(2)])  # ascending order per sample
    gv = torch.stack([tv[b][mask[b]] for b in range(2)])
    want_i, want_v = F.smooth_l1_loss(pi, gi), F.smooth_l1_loss(pv, gv)
    check("loss_img / loss_vid on masked targets in ascending order",
          float((li - want_i).abs()) < 1e-14 and float((lv - want_v).abs()) < 1e-14)
    check("loss = w_img*loss_img + w_vid*loss_vid", float((loss - (0.7 * want_i + 1.3 * want_v)).abs()) < 1e-14)
    x = torch.randn(2, 3, 10, dtype=D64) * 3 + 1
    n = ref.normalize_features(x)
    want = (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, unbiased=False, keepdim=True) + 1e-6)
    check("norm_feature = LayerNorm without affine, eps 1e-6", float((n - want).abs().max()) < 1e-12)


def test_param_groups():
    m = tiny_student()
    groups = ref.param_groups(m, 0.05)
    decay = set(next(g["names"] for g in groups if g["weight_decay"] == 0.05))
    no_decay = set(next(g["names"] for g in groups if g["weight_decay"] == 0.0))
    named = dict(m.named_parameters())
    trainable = {n for n, p in named.items() if p.requires_grad}
    check("groups cover every trainable parameter once", decay | no_decay == trainable and not decay & no_decay)
    for n in trainable:
        p = named[n]
        rule = not (p.ndim == 1 or n.endswith(".bias") or n in ("pos_embed", "cls_token", "mask_token"))
        check(f"decay rule for {n}", (n in decay) == rule)
    check("mask_token_img / mask_token_vid decayed (skip list matched exactly)",
          {"mask_token_img", "mask_token_vid"} <= decay)
    check("pos tables are not trainable", not {"pos_embed", "pos_embed_img", "pos_embed_vid"} & trainable)
    check("q_bias, v_bias, LayerNorm weights not decayed",
          {"blocks.0.attn.q_bias", "blocks.0.attn.v_bias", "blocks.0.norm1.weight", "decoder_img.norm.weight"}
          <= no_decay)
    check("weights decayed", {"patch_embed.proj.weight", "blocks.1.attn.qkv.weight", "down_vid.weight",
                              "decoder_vid.head.weight"} <= decay)
    opt = ref.make_adamw(m, 1e-3, 0.05)
    check("AdamW betas (0.9, 0.95), eps 1e-8",
          all(g["betas"] == (0.9, 0.95) and g["eps"] == 1e-8 for g in opt.param_groups))


def test_adamw_step():
    """Two steps of torch's AdamW (as the oracle uses it) against the update formula written out."""
    torch.manual_seed(8)
    p = torch.nn.Parameter(torch.randn(5, 3, dtype=D64))
    opt = torch.optim.AdamW([{"params": [p], "weight_decay": 0.05}], lr=1e-3, betas=(0.9, 0.95), eps=1e-8,
                            weight_decay=0.0)
    w = p.detach().clone()
    m = torch.zeros_like(w)
    v = torch.zeros_like(w)
    for step, lr in enumerate((2e-3, 5e-4), start=1):
        g = torch.randn(5, 3, dtype=D64)
        p.grad = g.clone()
        opt.param_groups[0]["lr"] = lr
        opt.step()
        w = w * (1 - lr * 0.05)
        m = 0.9 * m + 0.1 * g
        v = 0.95 * v + 0.05 * g * g
        mhat, vhat = m / (1 - 0.9 ** step), v / (1 - 0.95 ** step)
        w = w - lr * mhat / (vhat.sqrt() + 1e-8)
    d = float((p.detach() - w).abs().max())
    check("AdamW: decoupled decay p*(1-lr*wd), bias-corrected m / (sqrt(v_hat) + eps)", d < 1e-15, f"{d:g}")


def test_schedule():
    base, final, total, warm = 1e-3, 1e-4, 10, 3
    s = ref.cosine_schedule(base, final, total, warm)
    check("schedule length", len(s) == total)
    want = [base * i / (warm - 1) for i in range(warm)]
    want += [final + 0.5 * (base - final) * (1 + math.cos(math.pi * i / (total - warm))) for i in range(total - warm)]
    check("schedule = linspace warmup then cosine", maxdiff(s, want) < 1e-18, f"{maxdiff(s, want):g}")
    check("schedule endpoints: starts at 0, reaches base at the last warmup step and the first cosine step",
          s[0] == 0.0 and abs(s[warm - 1] - base) < 1e-18 and abs(s[warm] - base) < 1e-18)
    check("last step stays above min_lr (min_lr is step total_steps)", s[-1] > final and
          abs(s[-1] - (final + 0.5 * (base - final) * (1 + math.cos(math.pi * 6 / 7)))) < 1e-18)
    check("no warmup: starts at base", ref.cosine_schedule(base, final, 5, 0)[0] == base)
    # the recipe's numbers: 1.5e-4 * 1024/256 = 6e-4 peak; S/B min_lr 1e-4 * 4 = 4e-4
    r = ref.cosine_schedule(1.5e-4 * 1024 / 256, 1e-4 * 1024 / 256, 401 * 10, 40 * 10)
    check("recipe peak 6e-4 after 40 warmup epochs", abs(r[399] - 6e-4) < 1e-15 and r[0] == 0.0)


def test_gradcheck():
    m = tiny_student(drop_path=0.3, depth=2, decoder_depth=1, dim=16, ddim=16, frames=2, size=16, patch=8).double()
    randomize(m, 0.2)
    gen = torch.Generator().manual_seed(9)
    mask = ref.tube_mask(2, 1, 2, 0.5, gen)
    clip = torch.randn(2, 3, 2, 16, 16, dtype=D64)
    keep = torch.tensor([[[1, 1], [1, 1]], [[0, 1], [1, 0]], [[1, 1], [1, 1]], [[1, 0], [0, 1]]], dtype=D64)
    ti, tv = torch.randn(2, 4, 24, dtype=D64), torch.randn(2, 4, 20, dtype=D64)
    names = ["patch_embed.proj.bias", "blocks.1.attn.q_bias", "blocks.1.attn.v_bias", "blocks.0.norm1.weight",
             "blocks.1.mlp.fc2.bias", "norm.bias", "mask_token_img", "mask_token_vid", "down_img.bias",
             "decoder_img.blocks.0.attn.proj.bias", "decoder_vid.norm.weight", "decoder_vid.head.bias"]
    params = dict(m.named_parameters())
    base = {n: params[n].detach().clone() for n in names}

    def f(*vals):
        with torch.no_grad():
            saved = {n: params[n].detach().clone() for n in names}
        for n, v in zip(names, vals):
            delattr_path(m, n, v)
        try:
            pi, pv = m(clip, mask, keep)
            return ref.mvd_loss(pi, pv, ti, tv, mask)[0]
        finally:
            for n in names:
                delattr_path(m, n, torch.nn.Parameter(saved[n]))

    inputs = tuple(base[n].clone().requires_grad_(True) for n in names)
    grads = torch.autograd.grad(f(*inputs), inputs)
    zero = [n for n, g in zip(names, grads) if float(g.abs().max()) == 0.0]
    check("every checked parameter reaches the loss", not zero, f"zero gradient: {zero}")
    ok = torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-7, rtol=1e-5, raise_exception=False)
    check("gradcheck of the loss w.r.t. a parameter of every kind (drop path active)", ok)
    # and the module's own backward against a finite difference on a weight matrix entry
    m.zero_grad()
    pi, pv = m(clip, mask, keep)
    ref.mvd_loss(pi, pv, ti, tv, mask)[0].backward()
    w = params["blocks.0.attn.qkv.weight"]
    g = float(w.grad[5, 3])
    with torch.no_grad():
        w[5, 3] += 1e-6
        up = float(ref.mvd_loss(*m(clip, mask, keep), ti, tv, mask)[0])
        w[5, 3] -= 2e-6
        dn = float(ref.mvd_loss(*m(clip, mask, keep), ti, tv, mask)[0])
        w[5, 3] += 1e-6
    fd = (up - dn) / 2e-6
    check("backward of qkv.weight matches central difference", abs(fd - g) < 1e-7 + 1e-5 * abs(g), f"{fd} vs {g}")


def test_fixture_files():
    """The files make_fixtures writes (small cases, into a temporary folder) follow FIXTURES.md and reload into
    the reference modules to give the stored results."""
    import json
    import tempfile
    import make_fixtures
    from safetensors.torch import load_file
    out = tempfile.mkdtemp(prefix="mvd-fixtures-")
    spec = {"case", "num_frames", "input_size", "patch", "tubelet", "batch", "mask_ratio", "loss_weights", "student",
            "image_teacher", "video_teacher", "optim"}
    sub = {"student": {"dim", "depth", "heads", "mlp_ratio", "decoder_dim", "decoder_depth", "decoder_heads",
                       "drop_path"},
           "image_teacher": {"dim", "depth", "heads", "mlp_ratio", "patch", "input_size"},
           "video_teacher": {"dim", "depth", "heads", "mlp_ratio", "patch", "tubelet"},
           "optim": {"lr", "min_lr", "warmup_steps", "total_steps", "weight_decay", "beta1", "beta2", "eps",
                     "steps"}}
    for case in ("small", "small_droppath"):
        make_fixtures.run_case(make_fixtures.CASES[case], out)
        folder = os.path.join(out, case)
        check(f"{case}: files", sorted(os.listdir(folder)) == ["config.json", "image_teacher.safetensors",
                                                             "io.safetensors", "student.safetensors",
                                                             "video_teacher.safetensors"], str(os.listdir(folder)))
        with open(os.path.join(folder, "config.json")) as f:
            cfg = json.load(f)
        check(f"{case}: config.json keys as specified", set(cfg) == spec and
              all(set(cfg[k]) == v for k, v in sub.items()), str(cfg))
        s, o = cfg["student"], cfg["optim"]
        m = ref.MVDStudent(num_frames=cfg["num_frames"], img_size=cfg["input_size"], patch=cfg["patch"],
                           tubelet=cfg["tubelet"], dim=s["dim"], depth=s["depth"], heads=s["heads"],
                           decoder_dim=s["decoder_dim"], decoder_depth=s["decoder_depth"],
                           decoder_heads=s["decoder_heads"], target_dim_img=cfg["image_teacher"]["dim"],
                           target_dim_vid=cfg["video_teacher"]["dim"], drop_path=s["drop_path"])
        m.load_state_dict(load_file(os.path.join(folder, "student.safetensors")), strict=True)
        m = m.double()
        io_t = load_file(os.path.join(folder, "io.safetensors"))
        b, n = cfg["batch"], m.num_tokens
        nm = n // (cfg["input_size"] // cfg["patch"]) ** 2 * int(cfg["mask_ratio"] * (cfg["input_size"] //
                                                                                      cfg["patch"]) ** 2)
        mask = io_t["mask"].bool()
        check(f"{case}: mask", io_t["mask"].dtype == torch.uint8 and tuple(mask.shape) == (b, n) and
              all(int(r.sum()) == nm for r in mask))
        keep = io_t["drop_keep"]
        rates = torch.tensor(m.block_rates())
        check(f"{case}: drop_keep shape and rate-0 blocks all kept",
              tuple(keep.shape) == (o["steps"], m.n_blocks, 2, b) and bool((keep[:, rates == 0] == 1).all()))
        pi, pv = m(io_t["clip"].double(), mask, keep[0].double())
        check(f"{case}: pred shapes", tuple(io_t["pred_img"].shape) == (b, nm, cfg["image_teacher"]["dim"]) and
              tuple(io_t["pred_vid"].shape) == (b, nm, cfg["video_teacher"]["dim"]))
        d = max(float((pi.float() - io_t["pred_img"]).abs().max()), float((pv.float() - io_t["pred_vid"]).abs().max()))
        check(f"{case}: stored predictions reproduced from the stored files", d < 1e-6, f"{d:g}")
        loss = ref.mvd_loss(pi, pv, io_t["target_img"].double(), io_t["target_vid"].double(), mask,
                            *cfg["loss_weights"])[0]
        check(f"{case}: stored loss reproduced", abs(float(loss) - float(io_t["loss"])) < 1e-6 and
              abs(float(io_t["train_loss"][0]) - float(io_t["loss"])) < 1e-6)
        loss.backward()
        trainable = {k for k, p in m.named_parameters() if p.requires_grad}
        check(f"{case}: grad.* and final.* for every trainable parameter",
              {k[5:] for k in io_t if k.startswith("grad.")} == trainable and
              {k[6:] for k in io_t if k.startswith("final.")} == trainable)
        worst = max(float((p.grad.float() - io_t["grad." + k]).abs().max() / (io_t["grad." + k].abs().max() + 1e-30))
                    for k, p in m.named_parameters() if p.requires_grad)
        check(f"{case}: stored gradients reproduced", worst < 1e-5, f"{worst:g}")
        lr = ref.cosine_schedule(o["lr"], o["min_lr"], o["total_steps"], o["warmup_steps"])[:o["steps"]]
        check(f"{case}: train_lr is the schedule", float((io_t["train_lr"].double() - torch.tensor(lr)).abs().max())
              < 1e-9)
        it = ref.ImageTeacher(img_size=cfg["image_teacher"]["input_size"], patch=cfg["image_teacher"]["patch"],
                              dim=cfg["image_teacher"]["dim"], depth=cfg["image_teacher"]["depth"],
                              heads=cfg["image_teacher"]["heads"])
        it.load_state_dict(load_file(os.path.join(folder, "image_teacher.safetensors")), strict=True)
        t_img = ref.image_teacher_targets(it.double(), io_t["image_input"].double(), b)
        d = float((t_img.float() - io_t["target_img"]).abs().max())
        check(f"{case}: image targets reproduced", d < 1e-6, f"{d:g}")
        n_img = ref.normalize_features(t_img).float()
        check(f"{case}: normed targets", float((n_img - io_t["target_img_normed"]).abs().max()) < 1e-5)


def delattr_path(module, name, value):
    """Replaces the parameter `name` (dotted) of module by `value` (a tensor or Parameter)."""
    *path, leaf = name.split(".")
    for p in path:
        module = getattr(module, p)
    module._parameters.pop(leaf, None)
    module.__dict__.pop(leaf, None)
    if isinstance(value, torch.nn.Parameter):
        module.register_parameter(leaf, value)
    else:
        setattr(module, leaf, value)


if __name__ == "__main__":
    for t in (test_position_tables, test_attention, test_block_and_drop_path, test_patch_embed_gemm, test_teachers,
              test_masking_and_student, test_loss, test_param_groups, test_adamw_step, test_schedule,
              test_gradcheck, test_fixture_files):
        run(t)
    summary()
