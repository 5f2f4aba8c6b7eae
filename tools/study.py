"""
tools/study.py: the measured studies of docs/RESULTS.md that this code still runs (from the repository root).

    python tools/study.py --sigma-data                           # the spread of x₀ − y₀ on training crops
    python tools/study.py --sigma-data --data photos --degradation light
    python tools/study.py --ablation TEACHER.pt --seeds 0 1      # the student losses, added one at a time
    python tools/study.py --generalise                           # corpus vs demo photos, per degradation

--ablation and --generalise train with train.py (one process per run) and measure with evaluate.py, on photos
no run trained on; a run whose report exists is neither trained nor measured again. Their tables go to
results/study/ablation.md and results/study/generalise.md, their runs to runs/ablation/ and runs/generalise/.

(The recipe study that chose the diffusion settings, docs/RESULTS.md's "The recipe study", compared settings that
train.py no longer has, such as --param and --loss-weight: its code is study.py at commit b1012c6.)
"""

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import evaluate  # noqa: E402
from data import PHOTOS_EVAL, build_dataset  # noqa: E402
from degrade import DEGRADATIONS, degrade  # noqa: E402
from model import ModelConfig, SRModel  # noqa: E402


def train(args, log=None):
    """Run train.py with these arguments in a process of its own; its output to the file `log`, if given."""
    cmd = [sys.executable, str(ROOT / "train.py"), *args]
    if log is None:
        return subprocess.run(cmd, check=True)
    with open(log, "a") as f:
        subprocess.run(cmd, check=True, stdout=f, stderr=subprocess.STDOUT, env={**os.environ, "TQDM_DISABLE": "1"})


def cell(per_seed, digits=2):
    """The mean ± half the range of the per-seed numbers (the mean alone for one seed; n/a if one is missing)."""
    if None in per_seed:
        return "n/a"
    m, spread = sum(per_seed) / len(per_seed), (max(per_seed) - min(per_seed)) / 2
    return f"{m:.{digits}f} ± {spread:.{digits}f}" if len(per_seed) > 1 else f"{m:.{digits}f}"


# ---------------------------------------------------------------------------------------------------
# σ_d: the spread of x₀ − y₀ that the preconditioned output is scaled around
# ---------------------------------------------------------------------------------------------------


@torch.no_grad()
def sigma_data(data="demo", degradations=tuple(DEGRADATIONS), patch_sizes=(64, 128), batches=8, batch_size=32):
    """Print the standard deviation of x₀ − y₀ in the pixel latent (x₀ = encode(HR), y₀ = encode(bicubic↑LR))
    over batches of degraded training crops of each size, per degradation; returns {(size, degradation): std}."""
    model = SRModel(ModelConfig(size="tiny"))  # (only its latent is used: encode and encode_lr)
    out = {}
    for size in patch_sizes:
        ds = build_dataset(data, "train", size)
        for name in degradations:
            g, d, x0 = torch.Generator().manual_seed(0), [], []
            for k in range(batches):  # crop i of batch k: training image i mod n, its window drawn from seed k·b + i
                hr = torch.stack([ds[(i % len(ds), k * batch_size + i)] for i in range(batch_size)])
                hr, lr = degrade(hr, DEGRADATIONS[name], g)
                x0.append(model.encode(hr))
                d.append(x0[-1] - model.encode_lr(lr))
            out[size, name] = torch.cat(d).std().item()
            print(f"{data}, {size}² crops, {name}: std of x₀ − y₀ = {out[size, name]:.3f} (of x₀ itself: "
                  f"{torch.cat(x0).std():.3f})")
    print(f"σ_d (--sigma-data, {ModelConfig().sigma_data} by default) is set below these on purpose: it is a tuning "
          "value, not this std. The smaller it is, the less texture an under-trained sampler invents (config.py; "
          "docs/RESULTS.md).")
    return out


# ---------------------------------------------------------------------------------------------------
# The student-loss ablation: one teacher, the same seeds and steps, the losses added one at a time
# ---------------------------------------------------------------------------------------------------

# The shipped student's training settings (light degradation, learning rate 2e-4, 1 000 steps), from the teacher
# given, one loss at a time on top of distillation, then all of them. ESS runs with two encoders, the offline
# stand-in for CLIP (ImageNet VGG16's global features) and the tiny random CLIP (no semantics), both at weight 1.0,
# so that only the encoder differs.
ABLATION_BASE = ["--size", "tiny", "--degradation", "light", "--stage", "student", "--learning-rate", "2e-4",
                 "--student-iters", "1000", "--ckpt-every", "1000", "--log-every", "100"]
ABLATION = {  # train.py flags of the student stage, on top of ABLATION_BASE
    "distillation": ["--w-hfp", "0", "--w-adv", "0", "--w-ess", "0"],
    "+hfp": ["--w-adv", "0", "--w-ess", "0"],
    "+adv": ["--w-hfp", "0", "--w-ess", "0"],
    "+ess (vgg16)": ["--w-hfp", "0", "--w-adv", "0", "--w-ess", "1.0", "--clip", "vgg16"],
    "+ess (random CLIP)": ["--w-hfp", "0", "--w-adv", "0", "--w-ess", "1.0", "--clip", "random"],
    "full (vgg16 ESS)": ["--w-ess", "1.0", "--clip", "vgg16"],
}
ABLATION_KEYS = ["psnr", "lf_psnr", "ssim", "lpips", "dists", "lpips_vgg", "niqe", "hf_corr"]


def ablation_folder(out, name, seed):
    """out/<slug>-s<seed>: "+ess (random CLIP)" -> plus-ess-random, "full (vgg16 ESS)" -> full-vgg16."""
    base, _, detail = name.partition(" (")
    slug = base.replace("+", "plus-") + ("-" + detail.split()[0].rstrip(")").lower() if detail else "")
    return Path(out) / f"{slug}-s{seed}"


def ablation(teacher, seeds, out="runs/ablation", names=None, data="photos+demo", extra=()):
    """Distil `teacher` with each loss set of ABLATION (all, or `names`) on the training photos of `data`, and
    evaluate every student on its held-out photos (light inputs, as trained); returns the markdown table: the
    mean over the photos, then the mean ± half the range over the training seeds."""
    lines = ["| student losses | " + " | ".join(ABLATION_KEYS) + " |", "|---" * (len(ABLATION_KEYS) + 1) + "|"]
    for name in names or ABLATION:
        per_seed = {k: [] for k in ABLATION_KEYS}
        for seed in seeds:
            folder = ablation_folder(out, name, seed)
            if not (folder / "report" / "metrics.csv").exists():
                if not (folder / "student.pt").exists():
                    train(["--data", data, *ABLATION_BASE, "--teacher", str(teacher), "--out", str(folder),
                           "--overwrite", "--seed", str(seed), *ABLATION[name], *extra])
                evaluate.main(["--ckpt", str(folder / "student.pt"), "--data", data, "--degradation", "light",
                               "--out", str(folder / "report")])
            rows = evaluate.read_metrics(folder / "report")
            for k in ABLATION_KEYS:
                per_seed[k].append(evaluate.mean(rows, "student", k))
        lines.append(f"| {name} | " + " | ".join(cell(per_seed[k], 2 if k in ("psnr", "lf_psnr", "niqe") else 3)
                                                  for k in ABLATION_KEYS) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------
# Does training generalise? (docs/RESULTS.md): the tiny teacher at the tiny network's budget, trained on the photo
# corpus or on the eight demo photos, for each degradation, measured on photos neither trained on
# ---------------------------------------------------------------------------------------------------


def generalise(out="runs/generalise", degradations=tuple(DEGRADATIONS), data=("photos", "demo"),
               held_out="photos+demo", extra=()):
    """Train (train.py --size tiny --stage teacher, its defaults otherwise) and evaluate (on `held_out`) one
    teacher per (degradation, training data). Returns the markdown table: PSNR and lf_psnr of bicubic, the
    teacher's one call and its sampler, the mean over the held-out corpus photos and over chelsea + rocket."""
    lines = ["| degradation | trained on | held out | bicubic PSNR / lf | one call PSNR / lf (gain) "
             "| sampler PSNR / lf (gain) |", "|---|---|---|---|---|---|"]
    for name in degradations:
        for d in data:
            folder = Path(out) / f"{name}-{d}"
            if not (folder / "eval" / "metrics.csv").exists():
                folder.mkdir(parents=True, exist_ok=True)
                train(["--size", "tiny", "--stage", "teacher", "--data", d, "--degradation", name, "--out", str(folder),
                       "--overwrite", *extra], log=folder / "study.log")
                evaluate.main(["--teacher", str(folder / "teacher.pt"), "--data", held_out, "--degradation", name,
                               "--out", str(folder / "eval")])
            rows = evaluate.read_metrics(folder / "eval")
            for held_out, keep in (("corpus (8)", lambda s: s in PHOTOS_EVAL),
                                   ("chelsea + rocket", lambda s: s not in PHOTOS_EVAL)):
                if not (mine := [r for r in rows if keep(r["image"])]):
                    continue
                bic = [evaluate.mean(mine, "bicubic", k) for k in ("psnr", "lf_psnr")]
                cells = [f"{bic[0]:.2f} / {bic[1]:.2f}"]
                for method in ("teacher_1step", "teacher"):
                    psnr, lf = (evaluate.mean(mine, method, k) for k in ("psnr", "lf_psnr"))
                    cells.append(f"{psnr:.2f} / {lf:.2f} ({psnr - bic[0]:+.2f} / {lf - bic[1]:+.2f})")
                lines.append(f"| {name} | {d} | {held_out} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip().removeprefix("tools/"))
    what = ap.add_mutually_exclusive_group(required=True)
    what.add_argument("--sigma-data", action="store_true", help="measure the spread of x₀ − y₀ on the training "
                      "crops of --data, per --degradation (what σ_d, --sigma-data of train.py, is set below)")
    what.add_argument("--ablation", metavar="TEACHER", help="run the student-loss ablation from this teacher.pt")
    what.add_argument("--generalise", action="store_true", help="the table of docs/RESULTS.md's \"Does training "
                      "generalise?\": tiny teachers trained on the corpus or the demo photos, per degradation")
    ap.add_argument("--data", help="--sigma-data: the training photos (default demo); --ablation: the students' "
                    "training photos and, held out, their test photos (default photos+demo)")
    ap.add_argument("--degradation", action="append", choices=list(DEGRADATIONS), help="--sigma-data, --generalise: "
                    "only these degradations (default: all)")
    ap.add_argument("--patch-size", type=int, nargs="+", default=[64, 128], help="--sigma-data: HR crop sizes")
    ap.add_argument("--batches", type=int, default=8, help="--sigma-data: batches of 32 crops per size and "
                    "degradation")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="--ablation: training seeds")
    ap.add_argument("--loss-set", action="append", choices=list(ABLATION), help="--ablation: only these loss sets "
                    "(default: all)")
    ap.add_argument("--train-args", default="", help="--ablation, --generalise: more train.py flags, last (they "
                    "win), e.g. --train-args '--student-iters 200'")
    args = ap.parse_args(argv)
    degradations, extra = args.degradation or list(DEGRADATIONS), shlex.split(args.train_args)
    if args.sigma_data:
        sigma_data(args.data or "demo", degradations, args.patch_size, args.batches)
        return 0
    if args.ablation:
        name, text = "ablation", ablation(args.ablation, args.seeds, names=args.loss_set,
                                          data=args.data or "photos+demo", extra=extra)
    else:
        name, text = "generalise", generalise(degradations=degradations, extra=extra)
    Path("results/study").mkdir(parents=True, exist_ok=True)
    Path(f"results/study/{name}.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
