"""
checkpoint.py: the files train.py writes and sample.py / evaluate.py read.

A checkpoint is one .pt file holding a dictionary:

    format   "vpdsr-checkpoint-v2": the version of this layout (older versions still load; newer ones
             are refused with a message that says to update vpdsr)
    kind     "teacher" or "student"
    config   the ModelConfig, as a dict: everything needed to rebuild the network and its schedule
    weights  the network's state dict (the EMA weights, when training keeps an EMA)
    step     (train.py) the training step it was saved at

    save_checkpoint("runs/x/teacher.pt", model, step=1200)
    model = load_checkpoint("runs/x/teacher.pt", kind="teacher", device="cuda")

A folder of checkpoints meant for others (16-bit weights, `save_checkpoint(..., dtype=torch.float16)`) can
carry a SHA256SUMS manifest (`write_manifest`); loading then refuses a file whose digest differs.

last.pt, the full training state for --resume, is train.py's own (see save_state there).
"""

import os
from dataclasses import asdict, replace
from pathlib import Path

import torch

from model import ModelConfig, SRModel
from runtime import sha256_file

# The config a file holds is complete for the version that wrote it; settings added since take, when a file
# lacks them, the value every file before them was trained with (not today's defaults, which differ):
#   param, sigma_data   added with v2; v1 files predict x₀ (σ_d is then unused)
#   cond                added later in v2; older files see the LR image alone
FORMAT = "vpdsr-checkpoint-v2"
OLD_FORMATS = ("vpdsr-checkpoint-v1",)
BEFORE_IT_EXISTED = {"param": "x0", "sigma_data": 0.2, "cond": "lr"}


def save_checkpoint(path, model: SRModel, dtype=None, **extra):
    """One .pt file: the network's kind, its full config and the weights to use for inference (the EMA
    weights, when training keeps an EMA), written atomically. A diffusers codec is stored by name, not
    by weights. dtype=torch.float16 (or bfloat16) stores the weights at half the size, for distribution;
    loading always restores fp32 parameters."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    weights = model.net.state_dict()
    if dtype is not None:
        weights = {k: v.to(dtype) if v.is_floating_point() else v for k, v in weights.items()}
    obj = {"format": FORMAT, "kind": model.kind, "config": asdict(model.cfg), "weights": weights, **extra}
    atomic_save(obj, path)


def atomic_save(obj, path):
    """torch.save to a temporary file, then rename: readers never see a half-written file."""
    tmp = Path(path).with_name(Path(path).name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


# The pair this repository ships, trained by `make weights` (weights/README.md, the model card, says on what and
# how well): what sample.py and evaluate.py use when no checkpoint is given.
SHIPPED = Path(__file__).resolve().parent / "weights"


def shipped(kind="student"):
    """The path of the shipped teacher or student; an error that says what to do if it is missing."""
    path = SHIPPED / f"{kind}.pt"
    if not path.is_file():
        raise FileNotFoundError(f"the shipped {kind} ({path}) is missing: restore it (git checkout weights/), "
                                f"pass a checkpoint of your own, or train one (python train.py --data demo "
                                f"--preset tiny: a few minutes on a CPU)")
    return path


# A folder of distributed checkpoints carries a manifest, in the format of `sha256sum` (one line per file:
# the hex digest, two spaces, the file name). Loading a file the manifest lists checks its digest first,
# so that a corrupted or altered file is refused by name instead of producing wrong images.
MANIFEST = "SHA256SUMS"


def write_manifest(folder, names):
    """Write folder/SHA256SUMS for the files `names` in it (check by hand with `sha256sum -c SHA256SUMS`)."""
    folder = Path(folder)
    lines = [f"{sha256_file(folder / n)}  {n}" for n in sorted(names)]
    (folder / MANIFEST).write_text("\n".join(lines) + "\n")
    return folder / MANIFEST


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
    if obj["format"] not in (FORMAT, *OLD_FORMATS):
        raise ValueError(f"{path} is a {obj['format']} file, which this version of vpdsr (reading "
                         f"{FORMAT} and {', '.join(OLD_FORMATS)}) cannot read: update vpdsr")
    if kind is not None and obj["kind"] != kind:
        raise ValueError(f"{path} holds a {obj['kind']}, but {expected} is expected here")
    obj["config"] = {**BEFORE_IT_EXISTED, **obj["config"]}  # (the settings an older file predates)
    return obj


def load_checkpoint(path, kind=None, device="cpu", vae=None):
    """Rebuild the SRModel saved in `path` from the file alone, in eval mode. `kind` ('teacher' or
    'student'), if given, is enforced. `vae` points a diffusers codec at another copy of the same
    autoencoder (a local directory). Keys of compiled (`_orig_mod.`) or DDP (`module.`) networks are
    accepted."""
    obj = read_checkpoint(path, kind)
    try:
        cfg = ModelConfig(**obj["config"])
    except TypeError as e:  # a setting this version does not know
        raise ValueError(f"{path}: its config does not fit this version of vpdsr: {e}") from None
    if vae is not None:
        cfg = replace(cfg, codec=vae)
    model = SRModel(cfg, kind=obj["kind"])
    # (load_state_dict copies into the model's fp32 parameters: 16-bit files come back as fp32)
    weights = {k.replace("_orig_mod.", "").removeprefix("module."): v for k, v in obj["weights"].items()}
    try:
        model.net.load_state_dict(weights)
    except RuntimeError as e:
        raise ValueError(f"{path}: the weights do not fit the network its config describes: {e}") from None
    return model.to(device).eval()


# ---------------------------------------------------------------------------------------------------
# python checkpoint.py --teacher T.pt --student S.pt --to weights: a trained pair, ready to ship
# ---------------------------------------------------------------------------------------------------


def export_pair(teacher, student, folder, dtype=torch.float16):
    """A trained teacher and its student as 16-bit files teacher.pt and student.pt in `folder`, with the
    SHA256SUMS manifest that loading checks. Each keeps its config and training step. Returns the paths."""
    folder = Path(folder)
    models = {kind: load_checkpoint(src, kind=kind) for kind, src in (("teacher", teacher), ("student", student))}
    if models["teacher"].cfg != models["student"].cfg:
        raise ValueError(f"{student} was not distilled from a teacher like {teacher}: their configs differ")
    for kind, src in (("teacher", teacher), ("student", student)):
        save_checkpoint(folder / f"{kind}.pt", models[kind], dtype=dtype, step=read_checkpoint(src).get("step"))
    return [folder / "teacher.pt", folder / "student.pt", write_manifest(folder, ["teacher.pt", "student.pt"])]


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="Export a trained teacher and its student as 16-bit files with a "
                                 "SHA-256 manifest (what weights/ holds).")
    ap.add_argument("--teacher", required=True, help="the teacher checkpoint (a train.py run's teacher.pt)")
    ap.add_argument("--student", required=True, help="the student distilled from it (student.pt)")
    ap.add_argument("--to", metavar="DIR", default="weights", help="where to write them (default: %(default)s)")
    args = ap.parse_args()
    try:
        paths = export_pair(args.teacher, args.student, args.to)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    for p in paths:
        print(f"{p} ({p.stat().st_size / 2**20:.2f} MiB)")
