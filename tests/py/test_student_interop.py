"""A student checkpoint written by the C code (student_save, as mvd-train writes checkpoint.safetensors) loads
into the PyTorch reference student with strict=True, and gives the same predictions and losses on the same clip
and mask. The C side is tests/unit/test_model.c (test_student_checkpoint_for_pytorch), which writes
build/test-out/interop/{student,io}.safetensors from the small fixture case's sizes.

Tolerance: max|torch - C| / max|torch| below 1e-5 for predictions and losses, as for the fixture comparisons
(fp32 on both sides here, so both roundings count)."""
import json
import os
import sys

import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "reference"))
import mvd_reference as ref  # noqa: E402
from harness import check, run, summary  # noqa: E402

OUT = "build/test-out/interop"
FIXTURE = "build/fixtures/small/config.json"


def rel_err(a, b):
    return ((a.double() - b.double()).abs().max() / b.double().abs().max()).item()


def reference_student():
    with open(FIXTURE) as f:
        cfg = json.load(f)
    s = cfg["student"]
    return ref.MVDStudent(num_frames=cfg["num_frames"], img_size=cfg["input_size"], patch=cfg["patch"],
                          tubelet=cfg["tubelet"], dim=s["dim"], depth=s["depth"], heads=s["heads"],
                          mlp_ratio=s["mlp_ratio"], decoder_dim=s["decoder_dim"], decoder_depth=s["decoder_depth"],
                          decoder_heads=s["decoder_heads"], target_dim_img=cfg["image_teacher"]["dim"],
                          target_dim_vid=cfg["video_teacher"]["dim"])


def test_c_checkpoint_loads_strict_and_predicts_the_same():
    model = reference_student()
    state = load_file(os.path.join(OUT, "student.safetensors"))
    result = model.load_state_dict(state, strict=True)  # raises on any missing or unexpected key
    check("strict load of the C checkpoint", not result.missing_keys and not result.unexpected_keys, str(result))
    check("the checkpoint has exactly the reference keys", set(state) == set(model.state_dict()),
          f"extra {set(state) - set(model.state_dict())}, missing {set(model.state_dict()) - set(state)}")
    io = load_file(os.path.join(OUT, "io.safetensors"))
    model.eval()
    with torch.no_grad():
        mask = io["mask"].bool()
        pred_img, pred_vid = model(io["clip"], mask)
        loss, l_img, l_vid = ref.mvd_loss(pred_img, pred_vid, io["target_img"], io["target_vid"], mask)
    e_img, e_vid = rel_err(io["pred_img"], pred_img), rel_err(io["pred_vid"], pred_vid)
    e_loss = rel_err(io["loss"], torch.stack([loss, l_img, l_vid]))
    print(f"  predictions: image {e_img:.2e}, video {e_vid:.2e}; losses {e_loss:.2e} (tol 1e-5)")
    check("image predictions equal", e_img < 1e-5, f"{e_img:.3e}")
    check("video predictions equal", e_vid < 1e-5, f"{e_vid:.3e}")
    check("losses equal", e_loss < 1e-5, f"{e_loss:.3e}")


if __name__ == "__main__":
    torch.set_num_threads(2)
    run(test_c_checkpoint_loads_strict_and_predicts_the_same)
    summary()
