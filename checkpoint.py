"""
checkpoint.py: the files train.py writes and sample.py / evaluate.py read.

A checkpoint is one .pt file holding a dictionary:

    format       "vpdsr-checkpoint-v4": the version of this layout (a file of another version is refused
                 with a message that says so)
    kind         "teacher" or "student"
    config       the ModelConfig, as a dict (size, T, κ, min_noise_level, σ_d): with the code's constants
                 (degrade.SCALE, model.P and model.SQRT_ETA_T), everything that rebuilds the network and its
                 schedule
    degradation  the name of the degradation it was trained on (degrade.DEGRADATIONS): the LR inputs
                 evaluate.py makes for it unless told otherwise
    weights      the network's state dict (the EMA weights, when training keeps an EMA)
    step         the training step it was saved at

    save_checkpoint("runs/x/teacher.pt", model, degradation="light", step=1200)
    model = load_checkpoint("runs/x/teacher.pt", kind="teacher", device="cuda")   # model.info: kind, step, ...

A folder of checkpoints meant for others (16-bit weights; python tools/export.py) carries a SHA256SUMS
manifest; loading a file it lists refuses one whose digest differs.

last.pt, the full training state for --resume, is train.py's own (see save_state there).
"""

import os
from dataclasses import asdict
from pathlib import Path

import torch

from model import ModelConfig, SRModel
from runtime import sha256_file

FORMAT = "vpdsr-checkpoint-v4"


def save_checkpoint(path, model: SRModel, degradation, step, dtype=None):
    """One .pt file: the network's kind, its full config, the degradation it was trained on and the
    weights to use for inference (the EMA weights, when training keeps an EMA), written atomically.
    dtype=torch.float16 (or bfloat16) stores the
    weights at half the size, for distribution; loading always restores fp32 parameters."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    weights = model.net.state_dict()
    if dtype is not None:
        weights = {k: v.to(dtype) if v.is_floating_point() else v for k, v in weights.items()}
    atomic_save({"format": FORMAT, "kind": model.kind, "config": asdict(model.cfg), "degradation": degradation,
                 "weights": weights, "step": step}, path)


def atomic_save(obj, path):
    """torch.save to a temporary file, then rename: readers never see a half-written file."""
    tmp = Path(path).with_name(Path(path).name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


# The pair this repository ships, trained by the recipe `make weights` runs (weights/README.md, the model card,
# says on what, with which code, and how well): what sample.py and evaluate.py use when no checkpoint is given.
SHIPPED = Path(__file__).resolve().parent / "weights"


def shipped(kind="student"):
    """The path of the shipped teacher or student; an error that says what to do if it is missing."""
    path = SHIPPED / f"{kind}.pt"
    if not path.is_file():
        raise FileNotFoundError(f"the shipped {kind} ({path}) is missing: restore it (git checkout weights/), "
                                f"pass a checkpoint of your own, or train one (python train.py --data demo "
                                f"--size tiny: a few minutes on a CPU)")
    return path


# A folder of distributed checkpoints carries a manifest, in the format of `sha256sum` (one line per file:
# the hex digest, two spaces, the file name). Loading a file the manifest lists checks its digest first,
# so that a corrupted or altered file is refused by name instead of producing wrong images.
MANIFEST = "SHA256SUMS"


def verify(path):
    """If a SHA256SUMS beside `path` lists it, check its digest; an error names the file when it differs."""
    path = Path(path)
    manifest = path.parent / MANIFEST
    if not manifest.is_file():
        return False
    listed = {}
    for line in manifest.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            listed[name.lstrip("*")] = digest  # (sha256sum -b writes "*name")
    expected = listed.get(path.name)
    if expected is None:
        return False
    actual = sha256_file(path)
    if actual != expected:
        raise ValueError(f"{path} does not match its SHA-256 in {manifest} (expected {expected[:16]}..., got "
                         f"{actual[:16]}...): the file is corrupt or was changed; restore it (git checkout, or "
                         "download it again)")
    return True


def read_checkpoint(path, kind=None):
    """The raw dictionary of a checkpoint file, or an error that names the file and what is wrong."""
    path = Path(path)
    expected = f"a {kind} checkpoint" if kind else "a checkpoint"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (expected {expected} written by train.py)")
    verify(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, unpickling error, ...
        raise ValueError(f"{path} is not a readable checkpoint (truncated or corrupt?): {e}") from None
    if not isinstance(obj, dict) or not {"format", "kind", "config", "weights"} <= obj.keys() \
            or not str(obj["format"]).startswith("vpdsr-checkpoint-"):
        raise ValueError(f"{path} is not a vpdsr checkpoint (expected {expected} written by train.py)")
    if obj["format"] != FORMAT:
        raise ValueError(f"{path} is a {obj['format']} file; this version of vpdsr reads {FORMAT} files only")
    if kind is not None and obj["kind"] != kind:
        raise ValueError(f"{path} holds a {obj['kind']}, but {expected} is expected here")
    return obj


def load_checkpoint(path, kind=None, device="cpu"):
    """Rebuild the SRModel saved in `path` from the file alone, in eval mode, with `model.info` (its kind,
    step, degradation and path). `kind` ('teacher' or 'student'), if given, is enforced."""
    obj = read_checkpoint(path, kind)
    try:
        cfg = ModelConfig(**obj["config"])
    except TypeError as e:  # a setting this version does not know
        raise ValueError(f"{path}: its config does not fit this version of vpdsr: {e}") from None
    model = SRModel(cfg, kind=obj["kind"])
    try:  # (load_state_dict copies into the model's fp32 parameters: 16-bit files come back as fp32)
        model.net.load_state_dict(obj["weights"])
    except RuntimeError as e:
        raise ValueError(f"{path}: the weights do not fit the network its config describes: {e}") from None
    model.info = {"kind": obj["kind"], "step": obj["step"], "degradation": obj["degradation"], "path": str(path)}
    return model.to(device).eval()
