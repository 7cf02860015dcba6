"""The PyTorch oracle for Masked Video Distillation.

A plain implementation of the models, loss, optimiser groups and schedule described in
/work/shared/MVD_REFERENCE.md (kept with the project as the reference semantics), written so that every
module and parameter carries the reference's name: `state_dict()` keys are the ones of the public
checkpoints, so the same files feed the C code, this oracle and PyTorch users.

Contents
- position tables: `sincos_1d_blocks` (all sines then all cosines), `mae_2d_table` (MAE's 2-D table, w first),
  `mvd_3d_table` (temporal D/4 + spatial 3D/4), `videomae_1d_table` (interleaved sin/cos over flat positions);
- `ImageTeacher` (MAE encoder layout), `image_teacher_targets` (frames 0, tubelet, ... -> [B, N, D]);
- `VideoTeacher` (VideoMAE pretrain layout, decoder keys included), whose forward is the encoder's last block;
- `MVDStudent` (encoder + decoder_img + decoder_vid), with tube masks and per-sample drop-path decisions
  given as inputs, and `mvd_loss` (smooth L1, beta 1, over the masked tokens);
- `param_groups` (the reference's decay / no-decay split), `make_adamw`, `cosine_schedule`.

Precision: the oracle is meant to run in float64 (`model.double()`), with weights and inputs that are exactly
the float32 values stored in the fixtures. The C side computes in float32 (or bf16 on GPU), so float64 makes the
oracle the more accurate side: the difference it reports is the C side's rounding, not the oracle's.
"""
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

LN_EPS = 1e-6
NO_DECAY_NAMES = ("pos_embed", "cls_token", "mask_token")  # the student's skip list, matched exactly


# ----------------------------------------------------------------------------------------------------------
# Position tables (float64 numpy; callers convert)
# ----------------------------------------------------------------------------------------------------------
def sincos_1d_blocks(width, positions):
    """[len(positions), width]: sin(p*w_k) for k < width/2, then cos(p*w_k); w_k = 10000^(-k/(width/2))."""
    if width % 2:
        raise ValueError(f"sin-cos width must be even, got {width}")
    half = width // 2
    freq = 1.0 / np.power(10000.0, np.arange(half, dtype=np.float64) / half)
    angle = np.asarray(positions, dtype=np.float64).reshape(-1, 1) * freq.reshape(1, -1)
    return np.concatenate([np.sin(angle), np.cos(angle)], axis=1)


def mae_2d_table(width, grid, cls_row=False):
    """MAE's 2-D table for a grid x grid image, rows in (h, w) order: [table(w) | table(h)], each width/2."""
    if width % 4:
        raise ValueError(f"2-D sin-cos width must be a multiple of 4, got {width}")
    hh, ww = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
    table = np.concatenate([sincos_1d_blocks(width // 2, ww.reshape(-1)),
                            sincos_1d_blocks(width // 2, hh.reshape(-1))], axis=1)
    if cls_row:
        table = np.concatenate([np.zeros((1, width)), table], axis=0)
    return table


def mvd_3d_table(width, t_size, grid):
    """MVD's 3-D table, rows in (t, h, w) order: [table_1d(t) of width/4 | mae_2d_table(h, w) of 3*width/4]."""
    if width % 16:
        raise ValueError(f"3-D sin-cos width must be a multiple of 16, got {width}")
    temporal = sincos_1d_blocks(width // 4, np.arange(t_size))          # [T, D/4]
    spatial = mae_2d_table(width // 4 * 3, grid)                          # [HW, 3D/4]
    temporal = np.repeat(temporal, grid * grid, axis=0)                   # t slowest
    spatial = np.tile(spatial, (t_size, 1))
    return np.concatenate([temporal, spatial], axis=1)


def videomae_1d_table(n_positions, width):
    """VideoMAE's table: angle(p, j) = p / 10000^(2*(j//2)/width); sin on even j, cos on odd j."""
    j = np.arange(width)
    angle = np.arange(n_positions, dtype=np.float64).reshape(-1, 1) / np.power(10000.0, 2 * (j // 2) / width)
    table = angle.copy()
    table[:, 0::2] = np.sin(angle[:, 0::2])
    table[:, 1::2] = np.cos(angle[:, 1::2])
    return table


def drop_path_rates(rate, depth):
    """The per-block stochastic-depth rates of one stack: linspace(0, rate, depth) (a single block gets 0)."""
    if depth == 1:
        return [0.0]
    return [rate * i / (depth - 1) for i in range(depth)]


# ----------------------------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------------------------
class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()  # exact (erf) GELU
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Attention(nn.Module):
    """Multi-head self-attention. `split_bias`: qkv without bias plus q_bias and v_bias (k bias fixed at 0),
    as the student and VideoMAE; otherwise one full qkv bias, as MAE's timm ViT."""

    def __init__(self, dim, heads, split_bias=True):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not a multiple of heads {heads}")
        self.heads = heads
        self.split_bias = split_bias
        self.qkv = nn.Linear(dim, 3 * dim, bias=not split_bias)
        if split_bias:
            self.q_bias = nn.Parameter(torch.zeros(dim))
            self.v_bias = nn.Parameter(torch.zeros(dim))
        self.proj = nn.Linear(dim, dim)

    def qkv_bias(self):
        if self.split_bias:
            return torch.cat([self.q_bias, torch.zeros_like(self.q_bias), self.v_bias])
        return self.qkv.bias

    def forward(self, x):
        b, n, d = x.shape
        hd = d // self.heads
        qkv = F.linear(x, self.qkv.weight, self.qkv_bias())            # [B, N, 3D]
        qkv = qkv.view(b, n, 3, self.heads, hd).permute(2, 0, 3, 1, 4)  # [3, B, h, N, hd]
        q, k, v = qkv[0], qkv[1], qkv[2]
        scores = (q * hd ** -0.5) @ k.transpose(-2, -1)
        out = scores.softmax(dim=-1) @ v                                # [B, h, N, hd]
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    """Pre-norm transformer block. `keep` ([2, B] of 0/1, attention then MLP) applies drop path with the
    given per-sample decisions: a kept branch is scaled by 1 / (1 - rate), a dropped one removed."""

    def __init__(self, dim, heads, mlp_ratio, split_bias=True, drop_path=0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = Attention(dim, heads, split_bias)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = drop_path

    def _branch(self, y, keep):
        if keep is None or self.drop_path == 0.0:
            return y
        scale = keep.to(y.dtype) / (1.0 - self.drop_path)
        return y * scale.view(-1, 1, 1)

    def forward(self, x, keep=None):
        x = x + self._branch(self.attn(self.norm1(x)), None if keep is None else keep[0])
        x = x + self._branch(self.mlp(self.norm2(x)), None if keep is None else keep[1])
        return x


def _init_linear_ln(module):
    """The reference init: Linear weights xavier-uniform, biases 0; LayerNorm 1 / 0."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _trunc_normal_(t, std):
    """Truncated normal at +-std, as the student's mask tokens."""
    nn.init.trunc_normal_(t, mean=0.0, std=std, a=-std, b=std)


class PatchEmbed3d(nn.Module):
    def __init__(self, dim, patch, tubelet, in_chans=3):
        super().__init__()
        self.proj = nn.Conv3d(in_chans, dim, kernel_size=(tubelet, patch, patch), stride=(tubelet, patch, patch))

    def forward(self, x):  # [B, C, T, H, W] -> [B, N, D], tokens in (t, h, w) order
        return self.proj(x).flatten(2).transpose(1, 2)


class PatchEmbed2d(nn.Module):
    def __init__(self, dim, patch, in_chans=3):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch, stride=patch)

    def forward(self, x):  # [B, C, H, W] -> [B, HW, D]
        return self.proj(x).flatten(2).transpose(1, 2)


# ----------------------------------------------------------------------------------------------------------
# Image teacher (MAE encoder layout)
# ----------------------------------------------------------------------------------------------------------
class ImageTeacher(nn.Module):
    """MAE-pretrained ViT encoder. State dict: cls_token, pos_embed [1, 1+n, D] (kept for the layout; the
    forward recomputes the 2-D table at the input's size, with a zero cls row, as the reference does after
    dropping the checkpoint's pos_embed), patch_embed.proj, blocks.N (full qkv bias), norm (not applied)."""

    def __init__(self, img_size=224, patch=16, dim=768, depth=12, heads=12, mlp_ratio=4.0):
        super().__init__()
        self.patch = patch
        self.patch_embed = PatchEmbed2d(dim, patch)
        grid = img_size // patch
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.from_numpy(mae_2d_table(dim, grid, cls_row=True)).float()[None],
                                      requires_grad=False)
        self.blocks = nn.ModuleList([Block(dim, heads, mlp_ratio, split_bias=False) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=LN_EPS)
        w = self.patch_embed.proj.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.normal_(self.cls_token, std=0.02)
        _init_linear_ln(self)

    def forward(self, imgs):
        """[M, 3, S, S] -> [M, (S/p)^2, D]: last block's output, before the final norm, cls dropped."""
        x = self.patch_embed(imgs)
        grid = imgs.shape[-1] // self.patch
        pos = torch.from_numpy(mae_2d_table(x.shape[-1], grid, cls_row=True)).to(x.dtype)[None]
        x = x + pos[:, 1:]
        cls = (self.cls_token + pos[:, :1]).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1)
        for blk in self.blocks:
            x = blk(x)
        return x[:, 1:]


class MAEDecoderParts(nn.Module):
    """The decoder half of an MAE pretrain model, only for its keys (mask_token, decoder_pos_embed,
    decoder_embed, decoder_blocks.N, decoder_norm, decoder_pred): an image teacher ignores them."""

    def __init__(self, dim, n_patches, patch, decoder_dim=512, decoder_depth=8, decoder_heads=16, mlp_ratio=4.0):
        super().__init__()
        grid = int(round(n_patches ** 0.5))
        self.decoder_embed = nn.Linear(dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.decoder_pos_embed = nn.Parameter(
            torch.from_numpy(mae_2d_table(decoder_dim, grid, cls_row=True)).float()[None], requires_grad=False)
        self.decoder_blocks = nn.ModuleList([Block(decoder_dim, decoder_heads, mlp_ratio, split_bias=False)
                                             for _ in range(decoder_depth)])
        self.decoder_norm = nn.LayerNorm(decoder_dim, eps=LN_EPS)
        self.decoder_pred = nn.Linear(decoder_dim, patch * patch * 3)
        _init_linear_ln(self)
        nn.init.normal_(self.mask_token, std=0.02)


def mae_pretrain_state_dict(teacher, decoder_dim=16, decoder_depth=1, decoder_heads=2):
    """A state dict in the structure of an official MAE pretrain checkpoint: the teacher's keys plus the
    decoder keys, with small random decoder weights."""
    n = teacher.pos_embed.shape[1] - 1
    parts = MAEDecoderParts(teacher.cls_token.shape[-1], n, teacher.patch, decoder_dim, decoder_depth,
                            decoder_heads)
    sd = dict(teacher.state_dict())
    sd.update(parts.state_dict())
    return sd


def image_teacher_frames(clip, tubelet):
    """[B, 3, T, H, W] -> [B*T/tubelet, 3, H, W]: frames 0, tubelet, 2*tubelet, ... of each clip, clip-major."""
    frames = clip[:, :, ::tubelet]
    return frames.permute(0, 2, 1, 3, 4).reshape(-1, *frames.shape[1:2], *frames.shape[3:])


def image_teacher_targets(teacher, image_input, batch):
    """Runs the image teacher on [B*T', 3, S, S] and arranges [B, T'*g*g, D] in the student's (t, h, w) order."""
    out = teacher(image_input)                           # [(B T'), g*g, D]
    return out.reshape(batch, -1, out.shape[-1])


# ----------------------------------------------------------------------------------------------------------
# Video teacher (VideoMAE pretrain layout)
# ----------------------------------------------------------------------------------------------------------
class VideoMAEEncoder(nn.Module):
    def __init__(self, dim, depth, heads, mlp_ratio, patch, tubelet):
        super().__init__()
        self.patch_embed = PatchEmbed3d(dim, patch, tubelet)
        self.blocks = nn.ModuleList([Block(dim, heads, mlp_ratio, split_bias=True) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=LN_EPS)


class VideoMAEDecoder(nn.Module):
    def __init__(self, dim, depth, heads, mlp_ratio, out_dim):
        super().__init__()
        self.blocks = nn.ModuleList([Block(dim, heads, mlp_ratio, split_bias=True) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=LN_EPS)
        self.head = nn.Linear(dim, out_dim)


class VideoTeacher(nn.Module):
    """VideoMAE-pretrained video ViT, with the full pretrain checkpoint's keys (encoder.*, decoder.*,
    encoder_to_decoder.weight, mask_token) so its state dict matches the official one. The forward runs
    only the encoder on the whole clip and returns the last block's output, before encoder.norm."""

    def __init__(self, patch=16, tubelet=2, dim=768, depth=12, heads=12, mlp_ratio=4.0,
                 decoder_dim=384, decoder_depth=4, decoder_heads=6):
        super().__init__()
        self.encoder = VideoMAEEncoder(dim, depth, heads, mlp_ratio, patch, tubelet)
        self.decoder = VideoMAEDecoder(decoder_dim, decoder_depth, decoder_heads, mlp_ratio,
                                       3 * tubelet * patch * patch)
        self.encoder_to_decoder = nn.Linear(dim, decoder_dim, bias=False)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        _init_linear_ln(self)
        _trunc_normal_(self.mask_token, 0.02)

    def forward(self, clip):
        x = self.encoder.patch_embed(clip)
        pos = torch.from_numpy(videomae_1d_table(x.shape[1], x.shape[2])).to(x.dtype)[None]
        x = x + pos
        for blk in self.encoder.blocks:
            x = blk(x)
        return x


# ----------------------------------------------------------------------------------------------------------
# Student
# ----------------------------------------------------------------------------------------------------------
class FeatureDecoder(nn.Module):
    def __init__(self, dim, depth, heads, mlp_ratio, out_dim, drop_path):
        super().__init__()
        self.blocks = nn.ModuleList([Block(dim, heads, mlp_ratio, split_bias=True, drop_path=r)
                                     for r in drop_path_rates(drop_path, depth)])
        self.norm = nn.LayerNorm(dim, eps=LN_EPS)
        self.head = nn.Linear(dim, out_dim)

    def forward(self, x, n_return, keeps=None):
        for i, blk in enumerate(self.blocks):
            x = blk(x, None if keeps is None else keeps[i])
        return self.head(self.norm(x[:, -n_return:]))


class MVDStudent(nn.Module):
    """The MVD student: tubelet embedding + fixed 3-D table, encoder on visible tokens, two feature decoders.

    forward(clip, mask, keep) -> (pred_img, pred_vid) for the masked tokens in ascending order.
    mask: [B, N] bool, True = masked, the same count per sample. keep: optional [n_blocks, 2, B] of 0/1, blocks
    ordered encoder, decoder_img, decoder_vid; None means no drop path (evaluation)."""

    def __init__(self, num_frames=16, img_size=224, patch=16, tubelet=2, dim=768, depth=12, heads=12,
                 mlp_ratio=4.0, decoder_dim=None, decoder_depth=2, decoder_heads=None,
                 target_dim_img=768, target_dim_vid=768, drop_path=0.0):
        super().__init__()
        decoder_dim = decoder_dim or dim
        decoder_heads = decoder_heads or heads
        t_size, grid = num_frames // tubelet, img_size // patch
        self.num_tokens = t_size * grid * grid
        self.depth, self.decoder_depth = depth, decoder_depth

        def table(width):
            return nn.Parameter(torch.from_numpy(mvd_3d_table(width, t_size, grid)).float()[None],
                                requires_grad=False)

        self.patch_embed = PatchEmbed3d(dim, patch, tubelet)
        self.pos_embed = table(dim)
        self.blocks = nn.ModuleList([Block(dim, heads, mlp_ratio, split_bias=True, drop_path=r)
                                     for r in drop_path_rates(drop_path, depth)])
        self.norm = nn.LayerNorm(dim, eps=LN_EPS)
        self.mask_token_img = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.down_img = nn.Linear(dim, decoder_dim)
        self.decoder_img = FeatureDecoder(decoder_dim, decoder_depth, decoder_heads, mlp_ratio, target_dim_img,
                                          drop_path)
        self.pos_embed_img = table(decoder_dim)
        self.mask_token_vid = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.down_vid = nn.Linear(dim, decoder_dim)
        self.decoder_vid = FeatureDecoder(decoder_dim, decoder_depth, decoder_heads, mlp_ratio, target_dim_vid,
                                          drop_path)
        self.pos_embed_vid = table(decoder_dim)
        _trunc_normal_(self.mask_token_img, 0.02)
        _trunc_normal_(self.mask_token_vid, 0.02)
        _init_linear_ln(self)  # the patch-embedding convolution keeps PyTorch's default init

    @property
    def n_blocks(self):
        return self.depth + 2 * self.decoder_depth

    def forward_encoder(self, clip, mask, keeps=None):
        x = self.patch_embed(clip) + self.pos_embed.to(clip.dtype)
        b, _, d = x.shape
        x = x[~mask].reshape(b, -1, d)  # visible tokens, ascending order
        for i, blk in enumerate(self.blocks):
            x = blk(x, None if keeps is None else keeps[i])
        return self.norm(x)

    def _decode(self, x_enc, mask, down, mask_token, pos_table, decoder, keeps):
        x_vis = down(x_enc)
        b, _, d = x_vis.shape
        pos = pos_table.to(x_vis.dtype).expand(b, -1, -1)
        pos_vis = pos[~mask].reshape(b, -1, d)
        pos_mask = pos[mask].reshape(b, -1, d)
        x = torch.cat([x_vis + pos_vis, mask_token + pos_mask], dim=1)
        return decoder(x, pos_mask.shape[1], keeps)

    def forward(self, clip, mask, keep=None):
        e, k = self.depth, self.decoder_depth
        enc_keep = None if keep is None else keep[:e]
        img_keep = None if keep is None else keep[e:e + k]
        vid_keep = None if keep is None else keep[e + k:e + 2 * k]
        x = self.forward_encoder(clip, mask, enc_keep)
        pred_img = self._decode(x, mask, self.down_img, self.mask_token_img, self.pos_embed_img,
                                self.decoder_img, img_keep)
        pred_vid = self._decode(x, mask, self.down_vid, self.mask_token_vid, self.pos_embed_vid,
                                self.decoder_vid, vid_keep)
        return pred_img, pred_vid

    def block_rates(self):
        """The drop-path rate of every block, in drop_keep order."""
        return ([b.drop_path for b in self.blocks] + [b.drop_path for b in self.decoder_img.blocks]
                + [b.drop_path for b in self.decoder_vid.blocks])


# ----------------------------------------------------------------------------------------------------------
# Masks, loss, targets
# ----------------------------------------------------------------------------------------------------------
def tube_mask(batch, t_size, grid, ratio, generator):
    """[B, T*g*g] bool, True = masked: per sample int(ratio*g*g) spatial positions, repeated over t."""
    hw = grid * grid
    n_mask = int(ratio * hw)
    rows = []
    for _ in range(batch):
        m = torch.zeros(hw, dtype=torch.bool)
        m[torch.randperm(hw, generator=generator)[:n_mask]] = True
        rows.append(m.repeat(t_size))
    return torch.stack(rows)


def smooth_l1(pred, target, beta=1.0):
    """Mean smooth-L1: 0.5 d^2 / beta where |d| < beta, |d| - 0.5 beta elsewhere."""
    d = (pred - target).abs()
    return torch.where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta).mean()


def masked_targets(target, mask):
    """[B, N, D] -> [B, Nm, D]: the targets at the masked positions, ascending order."""
    b, _, d = target.shape
    return target[mask].reshape(b, -1, d)


def mvd_loss(pred_img, pred_vid, target_img, target_vid, mask, w_img=1.0, w_vid=1.0):
    """(loss, loss_img, loss_vid) with loss = w_img * loss_img + w_vid * loss_vid."""
    l_img = smooth_l1(pred_img, masked_targets(target_img, mask))
    l_vid = smooth_l1(pred_vid, masked_targets(target_vid, mask))
    return w_img * l_img + w_vid * l_vid, l_img, l_vid


def normalize_features(x, eps=LN_EPS):
    """The optional norm_feature: LayerNorm over the feature dim without affine parameters."""
    return F.layer_norm(x, x.shape[-1:], eps=eps)


# ----------------------------------------------------------------------------------------------------------
# Optimiser and schedule
# ----------------------------------------------------------------------------------------------------------
def param_groups(model, weight_decay, skip=NO_DECAY_NAMES):
    """The reference's groups over trainable parameters: no decay for 1-D tensors, names ending in '.bias'
    and names exactly in `skip` (so 'mask_token_img' / 'mask_token_vid' ARE decayed). Returns
    [{'params', 'names', 'weight_decay'}] for decay and no_decay (empty groups omitted)."""
    decay, no_decay = {"params": [], "names": [], "weight_decay": weight_decay}, \
        {"params": [], "names": [], "weight_decay": 0.0}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        group = no_decay if (p.ndim == 1 or name.endswith(".bias") or name in skip) else decay
        group["params"].append(p)
        group["names"].append(name)
    return [g for g in (decay, no_decay) if g["params"]]


def make_adamw(model, lr, weight_decay, betas=(0.9, 0.95), eps=1e-8):
    groups = [{"params": g["params"], "weight_decay": g["weight_decay"]} for g in param_groups(model, weight_decay)]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, weight_decay=0.0)


def cosine_schedule(base, final, total_steps, warmup_steps=0, start_warmup=0.0):
    """The reference's per-step schedule: linspace(start_warmup, base, warmup_steps) (both ends included),
    then final + (base - final) * (1 + cos(pi * i / n)) / 2 for i = 0 .. n-1, n = total_steps - warmup_steps
    (the last step is just above `final`; `final` itself would be step total_steps)."""
    warm = np.linspace(start_warmup, base, warmup_steps) if warmup_steps > 0 else np.zeros(0)
    n = total_steps - warmup_steps
    cos = np.array([final + 0.5 * (base - final) * (1.0 + math.cos(math.pi * i / n)) for i in range(n)])
    return np.concatenate([warm, cos])
