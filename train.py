"""
train.py: train VPD-SR. Stage 1 trains the multi-step ResShift teacher; stage 2 distills it into the
one-step student with the distillation, ESS, HFP and adversarial losses (losses.py).

One GPU, both stages, the recipe's defaults (base UNet, 256² patches, batch 32, bf16, torch.compile):
    python train.py --data DIV2K --download
One stage at a time:
    python train.py --data DIV2K --stage teacher
    python train.py --data DIV2K --stage student --teacher runs/vpdsr/teacher.pt --out runs/student-b
Several GPUs (DistributedDataParallel; --batch-size is per process):
    torchrun --nproc_per_node=4 train.py --data DIV2K
The CPU demo (tiny UNet, a random-weight CLIP; a few minutes on a laptop):
    python train.py --data demo --preset tiny
Continue an interrupted run, or measure speed (ms/step per part, on synthetic data):
    python train.py --data DIV2K --resume
    python train.py --benchmark --preset base

What --out (default runs/vpdsr) receives: teacher.pt and student.pt (inference checkpoints holding EMA
weights: sample.py and evaluate.py read these), last.pt (the full training state, for --resume),
config.json, log.jsonl (every loss term per logged step), samples/<stage>_<step>.png (LR | teacher |
student | HR) and loss_<stage>.png.
"""

import argparse
import json
import math
import os
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

import losses as L
from degrade import PRESETS as DEGRADATIONS
from degrade import build_dataset, build_loader, degrade
from model import (CONDITIONS, PARAMETRISATIONS, ModelConfig, PatchGAN, SRModel, atomic_save, load_checkpoint,
                   make_student, save_checkpoint)
from sample import peak_memory, timed

# The diffusion recipe: --recipe picks one, and any of its flags given on the command line wins.
#   resshift  ResShift's published settings (T = 15, κ = 2, the network predicts x₀), made for the latent of
#             a VQGAN whose values have a standard deviation of about 1.
#   pixel     what the recipe study (README, "The recipe study") measured best for the pixel latent: the
#             output preconditioned around y₀ with σ_d = 0.1, T = 4, κ = 0.25 and a last noise level of
#             κ·0.04 = 0.01.
RECIPES = {
    "resshift": dict(diffusion_steps=15, kappa=2.0, min_noise_level=0.04, param="x0", sigma_data=0.2,
                     cond="lr", loss_weight="uniform", lr_schedule="constant"),
    "pixel": dict(diffusion_steps=4, kappa=0.25, min_noise_level=0.04, param="precond", sigma_data=0.1,
                  cond="lr", loss_weight="uniform", lr_schedule="constant"),
}
# Defaults that depend on --preset. `base` is the one-GPU recipe (ResShift's learning rate and EMA);
# `tiny` makes the CPU demo finish within minutes. Any flag given on the command line wins.
PRESET_DEFAULTS = {
    "base": dict(recipe="pixel", teacher_iters=100_000, student_iters=20_000, batch_size=32, patch_size=256,
                 lr=5e-5, lr_d=1e-4, warmup=2000, adv_start=2000, clip="ViT-B-32:openai", workers=8,
                 log_every=50, sample_every=2000, ckpt_every=2000),
    "tiny": dict(recipe="pixel", teacher_iters=1200, student_iters=150, batch_size=8, patch_size=64,
                 lr=1e-3, lr_d=2e-4, warmup=50, adv_start=75, clip="random", workers=0,
                 log_every=25, sample_every=300, ckpt_every=300),
}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip(), allow_abbrev=False,
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    a = ap.add_argument
    a("--data", default="demo", help="demo, DIV2K, or a folder of HR images (searched recursively)")
    a("--download", action="store_true", help="download DIV2K if it is not found")
    a("--out", default="runs/vpdsr", help="run folder")
    a("--preset", choices=list(PRESET_DEFAULTS), default="base", help="network size and default settings")
    a("--stage", choices=["all", "teacher", "student"], default="all", help="which stage(s) to train")
    a("--teacher", help="teacher.pt for --stage student (default: --out/teacher.pt)")
    a("--teacher-iters", type=int, help="teacher training steps (preset default)")
    a("--student-iters", type=int, help="student training steps (preset default)")
    a("--batch-size", type=int, help="images per step, per process (preset default)")
    a("--patch-size", type=int, help="HR crop size; LR = patch/4 (preset default)")
    a("--lr", type=float, help="AdamW learning rate of the trained network (preset default)")
    a("--lr-d", type=float, help="AdamW learning rate of the discriminator (preset default)")
    a("--warmup", type=int, help="linear learning-rate warm-up steps, then --lr-schedule (preset default)")
    a("--lr-schedule", choices=["constant", "cosine"], help="after the warm-up: constant, or a cosine decay to 0 "
      "at the stage's last step (preset default)")
    a("--recipe", choices=list(RECIPES), help="the diffusion recipe, defaults for --diffusion-steps, --kappa, "
      "--min-noise-level, --param, --sigma-data, --loss-weight and --lr-schedule (preset default: pixel)")
    a("--diffusion-steps", type=int, help="T, the teacher's diffusion steps (preset default)")
    a("--kappa", type=float, help="κ, the noise scale of the forward process (preset default)")
    a("--min-noise-level", type=float, help="sets √η_1 = min(level/κ, level) (preset default)")
    a("--param", choices=list(PARAMETRISATIONS), help="what the network predicts: x0, residual (y₀ − x₀), or "
      "precond (a correction around y₀ scaled by c_skip/c_out) (preset default)")
    a("--sigma-data", type=float, help="σ_d, the std of x₀ − y₀ in the latent, for --param precond (preset default)")
    a("--cond", choices=list(CONDITIONS), help="what the network sees beside x_t: the LR image (ResShift), or "
      "the LR image and y₀, its bicubic upscale in latent space (SR3) (preset default)")
    a("--loss-weight", choices=["uniform", "precond"], help="teacher loss weight over t: uniform (ResShift) or "
      "1/c_out(t)² (EDM) (preset default)")
    a("--w-dist", type=float, default=1.0, help="weight of the distillation loss")
    a("--w-ess", type=float, default=0.1, help="weight of the CLIP semantic loss (ESS)")
    a("--w-hfp", type=float, default=0.05, help="weight of the high-frequency loss (HFP)")
    a("--w-adv", type=float, default=0.02, help="weight of the adversarial loss")
    a("--hfp-cutoff", type=float, default=0.25, help="HFP: lowest normalized frequency (1 = Nyquist) compared")
    a("--adv-start", type=int, help="student step at which the discriminator joins (preset default)")
    a("--clip", help="ESS encoder: NAME:PRETRAINED (open_clip), a local weights file, or random (preset default)")
    a("--vae", default="pixel", help="codec: pixel, or a diffusers VQModel/AutoencoderKL (hub id or local dir)")
    a("--vae-subfolder", default="", help="subfolder of --vae holding the autoencoder (e.g. vqvae)")
    a("--degradation", choices=list(DEGRADATIONS), default="resshift", help="degradation parameters")
    a("--compile", action=argparse.BooleanOptionalAction, default=None,
      help="torch.compile the networks (default: on CUDA only)")
    a("--precision", choices=["auto", "bf16", "fp16", "fp32"], default="auto",
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
    a("--benchmark", action="store_true", help="time a few steps of each stage on synthetic data and exit")
    args = ap.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    given = {x[2:].split("=")[0].replace("-", "_").removeprefix("no_") for x in map(str, argv) if x.startswith("--")}
    for k, v in PRESET_DEFAULTS[args.preset].items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    for k, v in RECIPES[args.recipe].items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    return args, given


# ---------------------------------------------------------------------------------------------------
# Set-up: processes, device, precision
# ---------------------------------------------------------------------------------------------------


class Run:
    """Everything a stage needs besides its networks: settings, device, precision, files, logging."""

    def __init__(self, args):
        self.args = args
        # Several processes when started by torchrun: one per GPU (NCCL), or per CPU process (gloo).
        self.ddp = "RANK" in os.environ
        cuda = torch.cuda.is_available() and args.device != "cpu"
        if self.ddp:
            dist.init_process_group("nccl" if cuda else "gloo")
            self.rank, self.world = dist.get_rank(), dist.get_world_size()
            self.device = torch.device(f"cuda:{os.environ['LOCAL_RANK']}" if cuda else "cpu")
        else:
            self.rank, self.world = 0, 1
            self.device = torch.device(("cuda" if cuda else "cpu") if args.device == "auto" else args.device)
        if self.device.type == "cuda":
            if self.device.index is None:
                self.device = torch.device("cuda", torch.cuda.current_device())
            torch.cuda.set_device(self.device)
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        self.main = self.rank == 0
        # Precision, chosen once: bf16 autocast where supported, fp16 with a GradScaler where not, fp32 on CPU.
        p = args.precision
        if self.device.type != "cuda" or p == "fp32":
            self.dtype = torch.float32
        elif p == "auto":
            self.dtype = torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16
        else:
            self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[p]
        self.compile = self.device.type == "cuda" if args.compile is None else args.compile
        self.deg = replace(DEGRADATIONS[args.degradation], scale=4)
        self.out = Path(args.out)
        self.bad = torch.zeros((), dtype=torch.bool, device=self.device)  # a non-finite loss was seen

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32)

    def scaler(self):
        return torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)

    def print(self, *msg):
        if self.main:
            from tqdm import tqdm

            tqdm.write(" ".join(map(str, msg)))

    def generators(self, stage, step):
        """(CPU generator, device generator) for one step: all randomness is a function of
        (seed, stage, step, rank), so a resumed run draws exactly what an uninterrupted one would."""
        seed = hash((self.args.seed, stage, step, self.rank)) & (2**63 - 1)
        g = torch.Generator().manual_seed(seed)
        dg = g if self.device.type == "cpu" else torch.Generator(self.device).manual_seed(seed ^ 0x5DEECE66D)
        return g, dg

    def wrap(self, net, train=True):
        """The network as it runs: under DDP (if trained) with gradients all-reduced, and compiled. DDP goes
        inside compile, so that the compiler can split the backward at DDP's buckets and overlap the
        all-reduces with computation."""
        if self.ddp and train:
            net = DDP(net, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        return torch.compile(net) if self.compile else net

    def any_bad(self):
        """Whether any process saw a non-finite loss (one sync, at log and checkpoint steps only)."""
        bad = self.bad.clone().int()
        if self.ddp:
            dist.all_reduce(bad, op=dist.ReduceOp.MAX)
        return bool(bad.item())


def optimize(loss, opt, sched, scaler, params, grad_clip):
    """backward -> (unscale) -> clip -> step -> schedule, with fp16 loss scaling when enabled."""
    scaler.scale(loss).backward()
    if grad_clip:
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    scaler.step(opt)
    scaler.update()
    opt.zero_grad(set_to_none=True)
    sched.step()


def warmup_schedule(opt, steps, kind="constant", total=None):
    """Linear warm-up over `steps` (step s uses (s + 1)/steps of the rate), then constant, or a cosine decay
    ½·(1 + cos(π·progress)) that reaches 0 at step `total`. A LambdaLR: its state resumes exactly."""

    def factor(s):
        if s < steps:
            return (s + 1) / steps
        if kind == "constant":
            return 1.0
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (s - steps) / max(1, total - steps))))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


@torch.no_grad()
def ema_update(ema_net, net, decay, n):
    """θ_ema ← d·θ_ema + (1 − d)·θ, with d warmed up as (1 + n)/(10 + n) so short runs still move."""
    d = min(decay, (1 + n) / (10 + n))
    torch._foreach_lerp_(list(ema_net.parameters()), list(net.parameters()), 1 - d)


# ---------------------------------------------------------------------------------------------------
# One training step of each stage (the benchmark times these very functions)
# ---------------------------------------------------------------------------------------------------


def teacher_step(run, s, hr, step):
    """ResShift: regress x₀ from x_t at a random t. `s` holds teacher, opt, sched, scaler, raw, ema."""
    g, dg = run.generators(0, step)
    # 1. degrade the HR batch into its LR input, on the device
    hr, lr = degrade(hr, run.deg, g)
    with run.autocast():
        # 2. latents: x₀ = encode(HR), y₀ = encode(bicubic↑LR)
        with torch.no_grad():  # (in fp32: an autoencoder under autocast would hand back bf16 latents)
            x0, y0 = s.teacher.encode(hr).float(), s.teacher.encode_lr(lr).float()
        # 3. the forward process at t ~ U{1..T}: x_t = x₀ + η_t·(y₀ − x₀) + κ·√η_t·ε
        t = torch.randint(1, s.teacher.cfg.T + 1, (hr.shape[0],), generator=dg, device=hr.device)
        eps = torch.randn(x0.shape, generator=dg, device=hr.device, dtype=x0.dtype)
        x_t = s.teacher.q_sample(x0, y0, t, eps)
        # 4. estimate x₀ and regress: ‖f_θ(x_t, LR, t) − x₀‖², weighted over t by --loss-weight
        weight = s.teacher.loss_weight(t, run.args.loss_weight)
        loss = L.teacher_loss(s.teacher(x_t, lr, t, y0), x0, weight)
    run.bad |= ~torch.isfinite(loss)
    # 5. optimizer step, then the EMA that teacher.pt keeps
    optimize(loss, s.opt, s.sched, s.scaler, s.raw.parameters(), run.args.grad_clip)
    ema_update(s.ema.net, s.raw, run.args.ema, step)
    return {"loss": loss.detach()}


def student_step(run, s, hr, step):
    """VPD-SR: one student step and one discriminator step. `s` holds teacher, student, disc, clip, ..."""
    a = run.args
    g, dg = run.generators(1, step)
    # 1. degrade the HR batch into its LR input, on the device
    hr, lr = degrade(hr, run.deg, g)
    with run.autocast():
        # 2. x_T = y₀ + κ√η_T·ε from the LR image and fresh noise
        with torch.no_grad():
            y0 = s.student.encode_lr(lr).float()
        eps = torch.randn(y0.shape, generator=dg, device=hr.device, dtype=y0.dtype)
        # 3. the teacher's targets: its deterministic T-step sample from the same x_T (frozen, no grad)
        target = L.distillation_target(s.teacher, y0, lr, eps)
        # 4. the student: one step, x̂₀ = f_φ(x_T, LR, T), decoded to an image
        x0_hat = s.student(s.student.prior_sample(y0, eps), lr, s.student.cfg.T, y0)
        sr = s.student.decode(x0_hat)
        # 5. the losses, each weighted and logged on its own
        terms = {"dist": L.distillation(x0_hat, target)}
        if a.w_ess:
            terms["ess"] = L.ess(s.clip, sr, hr)
        if a.w_hfp:
            terms["hfp"] = L.hfp(sr, hr, a.hfp_cutoff)
        adversarial = a.w_adv > 0 and step >= a.adv_start
        if adversarial:  # D's weights take no gradient here (raw_disc: outside DDP, requires_grad off)
            terms["adv"] = L.g_hinge(s.raw_disc(sr))
        weights = {"dist": a.w_dist, "ess": a.w_ess, "hfp": a.w_hfp, "adv": a.w_adv}
        loss = sum(weights[k] * v for k, v in terms.items())
    run.bad |= ~torch.isfinite(loss)
    # 6. student step, and its EMA (what student.pt keeps)
    optimize(loss, s.opt, s.sched, s.scaler, s.raw.parameters(), a.grad_clip)
    ema_update(s.ema.net, s.raw, a.ema, step)
    # 7. discriminator step: real HR patches against the student's (detached) outputs
    if adversarial:
        s.raw_disc.requires_grad_(True)
        with run.autocast():
            terms["d"] = L.d_hinge(s.disc(hr), s.disc(sr.detach()))
        run.bad |= ~torch.isfinite(terms["d"])
        optimize(terms["d"], s.opt_d, s.sched_d, s.scaler_d, s.raw_disc.parameters(), a.grad_clip)
        s.raw_disc.requires_grad_(False)
    terms["total"] = loss
    return {k: v.detach() for k, v in terms.items()}


# ---------------------------------------------------------------------------------------------------
# The stages
# ---------------------------------------------------------------------------------------------------


class State(dict):
    """A stage's networks, optimizers and counters (attribute access for brevity)."""

    __getattr__ = dict.__getitem__
    __setattr__ = dict.__setitem__


# What last.pt holds of each stage, besides its EMA network: enough to continue exactly. Randomness needs no
# saved RNG state: every step re-derives it from (seed, stage, step).
STATE_KEYS = {"teacher": ("raw", "opt", "sched", "scaler"),
              "student": ("raw", "opt", "sched", "scaler", "raw_disc", "opt_d", "sched_d", "scaler_d")}


def save_state(run, s, stage, step):
    state = {k: s[k].state_dict() for k in STATE_KEYS[stage]}
    atomic_save({"stage": stage, "step": step, "ema": s.ema.net.state_dict(), **state, "args": vars(run.args),
                 "teacher_path": s.get("teacher_path")}, run.out / "last.pt")


def restore_state(s, stage, resume):
    """Continue from last.pt if it holds this stage; s.start is the step to continue from."""
    s.start = 0
    if resume and resume["stage"] == stage:
        for k in STATE_KEYS[stage]:
            s[k].load_state_dict(resume[k])
        s.ema.net.load_state_dict(resume["ema"])
        s.start = resume["step"]


def setup_teacher(run, resume):
    a = run.args
    cfg = ModelConfig(preset=a.preset, codec=a.vae, codec_subfolder=a.vae_subfolder, T=a.diffusion_steps,
                      kappa=a.kappa, min_noise_level=a.min_noise_level, param=a.param, sigma_data=a.sigma_data,
                      cond=a.cond)
    s = State(teacher=SRModel(cfg).to(run.device))
    s.raw = s.teacher.net  # the unwrapped network: what is saved and averaged
    s.ema = SRModel(cfg, codec=s.teacher.codec).to(run.device).requires_grad_(False).eval()
    s.ema.net.load_state_dict(s.raw.state_dict())
    s.opt = torch.optim.AdamW(s.raw.parameters(), lr=a.lr, weight_decay=0.0)
    s.sched, s.scaler = warmup_schedule(s.opt, a.warmup, a.lr_schedule, a.teacher_iters), run.scaler()
    restore_state(s, "teacher", resume)
    s.teacher.net = run.wrap(s.raw)
    return s


def load_ess_encoder(run):
    """The frozen CLIP of the ESS loss, loaded before any training so that missing weights fail at once."""
    if not run.args.w_ess:
        return None
    clip = L.load_clip(run.args.clip).to(run.device)
    if not clip.semantic:
        run.print(f"note: ESS uses a randomly initialised CLIP ({clip.name}): it is not semantic")
    return clip


def setup_student(run, teacher, resume, clip, preview=None):
    a = run.args
    teacher.eval().requires_grad_(False)  # S_θ: frozen; these are the teacher's EMA weights
    s = State(teacher=teacher, student=make_student(teacher).train())  # f_φ starts as a copy of the teacher
    s.raw = s.student.net
    s.ema = make_student(teacher).requires_grad_(False).eval()
    s.raw_disc = PatchGAN().to(run.device)
    s.clip = clip
    if preview is not None and run.main:  # the frozen teacher's sample grid column, computed once, uncompiled
        with torch.no_grad(), run.autocast():
            s.preview_teacher = teacher.upscale(preview[1], preview_noise(teacher, preview[1]))
    s.opt = torch.optim.AdamW(s.raw.parameters(), lr=a.lr, weight_decay=0.0)
    s.opt_d = torch.optim.AdamW(s.raw_disc.parameters(), lr=a.lr_d, betas=(0.5, 0.999), weight_decay=0.0)
    s.sched = warmup_schedule(s.opt, a.warmup, a.lr_schedule, a.student_iters)
    s.sched_d = warmup_schedule(s.opt_d, a.warmup, a.lr_schedule, a.student_iters)
    s.scaler, s.scaler_d = run.scaler(), run.scaler()
    restore_state(s, "student", resume)
    s.student.net = run.wrap(s.raw)
    s.teacher.net = run.wrap(s.teacher.net, train=False)
    s.disc = run.wrap(s.raw_disc)  # (DDP must see D's parameters requiring grad when it wraps them)
    s.raw_disc.requires_grad_(False)  # on only during D's own step
    return s


def train_stage(run, stage, s, dataset, iters, step_fn, preview):
    """The loop shared by both stages: data -> step_fn -> log / sample / checkpoint."""
    from tqdm import tqdm

    a = run.args
    loader = iter(build_loader(dataset, a.batch_size, a.workers, a.seed + (stage == "student"), run.device,
                               start_step=s.start, rank=run.rank, world=run.world))
    bar = tqdm(total=iters, initial=s.start, desc=stage, disable=not run.main, dynamic_ncols=True)
    saved = s.start or None  # the step of the last good last.pt this run can vouch for
    sums, counts, t_log, n_log = {}, {}, time.perf_counter(), 0
    for step in range(s.start, iters):
        hr = next(loader).to(run.device, non_blocking=True)
        lr_now = s.sched.get_last_lr()[0]  # the learning rate this step uses
        terms = step_fn(run, s, hr, step)
        for k, v in terms.items():  # (adv and d exist only from --adv-start: each term averages its own steps)
            sums[k], counts[k] = sums.get(k, 0) + v, counts.get(k, 0) + 1
        n_log, done = n_log + 1, step + 1
        bar.update(1)
        if done % a.log_every == 0 or done == iters:
            if run.any_bad():
                stop_on_nan(run, stage, done, saved)
            dt = time.perf_counter() - t_log
            rec = {"stage": stage, "step": done, **{k: (v / counts[k]).item() for k, v in sums.items()},
                   "lr": lr_now, "img_per_s": n_log * a.batch_size * run.world / dt}
            bar.set_postfix({k: f"{v:.4g}" for k, v in rec.items() if k not in ("stage", "step", "lr")})
            if run.main:
                with open(run.out / "log.jsonl", "a") as f:
                    f.write(json.dumps(rec) + "\n")
            sums, counts, t_log, n_log = {}, {}, time.perf_counter(), 0
        if run.main and (done % a.sample_every == 0 or done == iters):
            save_samples(run, stage, done, s, preview)
        if done % a.ckpt_every == 0 or done == iters:
            if run.any_bad():
                stop_on_nan(run, stage, done, saved)
            if run.main:
                save_checkpoint(run.out / f"{stage}.pt", s.ema, step=done)
                save_state(run, s, stage, done)
            saved = done
            if run.ddp:
                dist.barrier()  # no process moves on (to read teacher.pt, say) before the files exist
    bar.close()
    if run.main:
        plot_losses(run, stage)
        run.print(f"{stage} done: {run.out / f'{stage}.pt'}")


def stop_on_nan(run, stage, step, saved):
    kept = f"the last good checkpoint is {run.out / 'last.pt'} (step {saved})" if saved else \
        "no checkpoint was written before it"
    run.print(f"error: a loss became NaN or infinite in the {stage} stage by step {step}; {kept}. "
              "Try a lower --lr, --precision fp32, or a smaller --grad-clip.")
    sys.exit(1)


# ---------------------------------------------------------------------------------------------------
# What a person watches: sample grids and loss curves
# ---------------------------------------------------------------------------------------------------


def make_preview(run, dataset, n=4):
    """A fixed batch (the same crops and degradations all run long) for the sample grids."""
    hr = torch.stack([dataset[(i % len(dataset), 1000 + i)] for i in range(n)]).to(run.device)
    return degrade(hr, run.deg, torch.Generator().manual_seed(run.args.seed))


def preview_noise(model, lr):
    """The same ε for every sample grid of a run."""
    shape = (lr.shape[0], model.codec.channels, *lr.shape[-2:])
    return torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(lr.device)


@torch.no_grad()
def save_samples(run, stage, step, s, preview):
    """A grid, one row per image: LR (nearest ↑) | teacher (T steps) | [student (1 step)] | HR."""
    from torchvision.utils import save_image

    hr, lr = preview
    eps = preview_noise(s.ema, lr)
    with run.autocast():
        columns = [lr.repeat_interleave(4, -2).repeat_interleave(4, -1)]
        if stage == "teacher":
            columns.append(s.ema.upscale(lr, eps))
        else:
            columns += [s.preview_teacher, s.ema.upscale(lr, eps)]
        columns.append(hr)
    grid = torch.stack([c.float().clamp(0, 1) for c in columns], 1).flatten(0, 1)
    (run.out / "samples").mkdir(exist_ok=True)
    save_image(grid, run.out / "samples" / f"{stage}_{step:06d}.png", nrow=len(columns), padding=2, pad_value=1)


def plot_losses(run, stage):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = [json.loads(line) for line in open(run.out / "log.jsonl")]
    recs = [r for r in recs if r["stage"] == stage]
    if not recs:
        return
    keys = [k for k in recs[-1] if k not in ("stage", "step", "lr", "img_per_s")]
    fig, ax = plt.subplots(figsize=(7, 4))
    for k in keys:
        ax.plot([r["step"] for r in recs if k in r], [abs(r[k]) for r in recs if k in r], label=k)
    ax.set(xlabel="step", ylabel="loss (absolute value)", yscale="log", title=f"{stage} stage: {run.out}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(run.out / f"loss_{stage}.png", dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------------
# The speed harness: python train.py --benchmark
# ---------------------------------------------------------------------------------------------------


def benchmark(run, warmup=3):
    """ms/step, img/s and peak memory of both stages on synthetic data (random HR crops), then the step
    split into its parts, each timed alone (synchronized, median of the timed repeats). Networks have
    random weights (speed does not depend on them); so has CLIP, with the architecture of --clip."""
    a, dev = run.args, run.device
    reps = 10 if dev.type == "cuda" else 3

    def ms(fn):  # median over the repeats, each one synchronized
        return sorted(timed(lambda: fn(i), dev)[1] for i in range(reps))[reps // 2]

    hr = torch.rand(a.batch_size, 3, a.patch_size, a.patch_size, device=dev)
    g = torch.Generator().manual_seed(0)
    _, lr = degrade(hr, run.deg, g)
    rows = []
    print(f"train.py --benchmark: preset {a.preset}, batch {a.batch_size}, {a.patch_size}² HR patches, {dev} "
          f"({torch.cuda.get_device_name(dev) if dev.type == 'cuda' else f'{torch.get_num_threads()} threads'}), "
          f"{str(run.dtype).removeprefix('torch.')}, compile {'on' if run.compile else 'off'}, "
          f"torch {torch.__version__}")

    # Teacher stage
    s = setup_teacher(run, None)
    for i in range(warmup):
        teacher_step(run, s, hr, i)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    step = ms(lambda i: teacher_step(run, s, hr, i))
    degradation = ms(lambda i: degrade(hr, run.deg, g))  # the same in both stages
    rows += [("teacher", "step, end to end", step, peak_memory(dev)), ("teacher", "  degradation", degradation, "")]

    # Student stage (the teacher: the random network above, frozen)
    a.adv_start = 0  # every timed step includes the discriminator
    clip = L.load_clip(a.clip, pretrained=False).to(dev) if a.w_ess else None
    s2 = setup_student(run, s.ema, None, clip)
    for i in range(warmup):
        student_step(run, s2, hr, i)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    step = ms(lambda i: student_step(run, s2, hr, i))
    with run.autocast(), torch.no_grad():
        y0 = s2.student.encode_lr(lr)
        eps = torch.randn_like(y0)
        sr = s2.student.decode(s2.student(s2.student.prior_sample(y0, eps), lr, s2.student.cfg.T)).float()

    def student_fwd_bwd(i):
        with run.autocast():
            x0_hat = s2.student(s2.student.prior_sample(y0, eps), lr, s2.student.cfg.T)
            loss = L.distillation(x0_hat, y0) + s2.student.decode(x0_hat).float().mean()
        optimize(loss, s2.opt, s2.sched, s2.scaler, s2.raw.parameters(), a.grad_clip)

    def loss_fwd_bwd(fn):
        def run_once(i):
            x = sr.clone().requires_grad_(True)
            with run.autocast():
                out = fn(x)
            out.backward()
        return run_once

    def disc_steps(i):
        x = sr.clone().requires_grad_(True)
        with run.autocast():
            L.g_hinge(s2.raw_disc(x)).backward()
        s2.raw_disc.requires_grad_(True)
        with run.autocast():
            d = L.d_hinge(s2.disc(hr), s2.disc(sr))
        optimize(d, s2.opt_d, s2.sched_d, s2.scaler_d, s2.raw_disc.parameters(), a.grad_clip)
        s2.raw_disc.requires_grad_(False)

    with run.autocast():
        targets = ms(lambda i: L.distillation_target(s2.teacher, y0, lr, eps))
    rows += [("student", "step, end to end", step, peak_memory(dev)),
             ("student", "  degradation", degradation, ""),
             ("student", f"  teacher targets ({s2.teacher.cfg.T} steps, no grad)", targets, ""),
             ("student", "  student fwd/bwd + AdamW", ms(student_fwd_bwd), ""),
             ("student", f"  CLIP ESS fwd/bwd ({clip.name if clip else 'off'})",
              ms(loss_fwd_bwd(lambda x: L.ess(clip, x, hr))) if clip else 0.0, ""),
             ("student", "  HFP fwd/bwd", ms(loss_fwd_bwd(lambda x: L.hfp(x, hr, a.hfp_cutoff))), ""),
             ("student", "  discriminator (G term + D step)", ms(disc_steps), "")]
    print(f"{'stage':<9}{'part':<46}{'ms':>9}{'img/s':>9}  peak memory")
    for stage, part, t, mem in rows:
        ips = f"{1000 * a.batch_size / t:9.0f}" if mem else " " * 9
        print(f"{stage:<9}{part:<46}{t:>9.1f}{ips}  {mem}".rstrip())
    return 0


# ---------------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------------


# What a resumed run takes from its command line: these flags when given (other settings come back from
# last.pt, and changing them is an error), and always the ones that say what to do now.
RESUME_MAY_CHANGE = {"teacher_iters", "student_iters", "workers", "log_every", "sample_every", "ckpt_every",
                     "device", "compile", "precision"}
RESUME_FROM_COMMAND_LINE = {"stage", "resume", "overwrite", "download", "benchmark", "out"}


def main(argv=None):
    args, given = parse_args(argv)

    # 1. The run folder: a fresh one, or the state (and settings) of the run to resume
    resume, restored = None, []
    last = Path(args.out) / "last.pt"
    if args.resume:
        if not last.exists():
            sys.exit(f"error: --resume, but {last} does not exist (nothing to resume)")
        resume = torch.load(last, map_location="cpu", weights_only=True)
        for k, v in resume["args"].items():
            if k in RESUME_FROM_COMMAND_LINE or (k in given and k in RESUME_MAY_CHANGE) or getattr(args, k) == v:
                continue
            if k in given:
                sys.exit(f"error: --{k.replace('_', '-')} cannot change when a run is resumed ({v} in {last})")
            restored.append(k)
            setattr(args, k, v)
    elif last.exists() and not args.overwrite and not args.benchmark:
        sys.exit(f"error: {args.out} already holds a run: --resume to continue it, --overwrite to start "
                 "again, or --out for a new folder")
    run = Run(args)
    torch.manual_seed(args.seed)
    if args.benchmark:
        return benchmark(run)
    if resume:
        run.print(f"resuming {run.out}: {resume['stage']} stage, step {resume['step']}"
                  + (f"; with the run's own {', '.join(restored)}" if restored else ""))
    if run.main:
        run.out.mkdir(parents=True, exist_ok=True)
        if not args.resume and (run.out / "log.jsonl").exists():
            (run.out / "log.jsonl").unlink()
        config = {"args": vars(args), "degradation": asdict(run.deg), "world_size": run.world,
                  "device": str(run.device), "dtype": str(run.dtype), "torch": torch.__version__}
        (run.out / "config.json").write_text(json.dumps(config, indent=2))

    # 2. Data: random HR crops; the degradation into LR inputs happens on the device, inside each step
    try:
        dataset = build_dataset(args.data, "train", args.patch_size, args.download)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")
    run.print(f"{len(dataset)} training images from {dataset.name}; {run.world} process(es) on {run.device}, "
              f"{str(run.dtype).removeprefix('torch.')}, compile {'on' if run.compile else 'off'}")
    preview = make_preview(run, dataset)

    # 3. The ESS encoder, loaded now: weights that cannot be had should stop the run before training, not after
    try:
        clip = load_ess_encoder(run) if args.stage != "teacher" else None
    except (RuntimeError, ValueError) as e:
        sys.exit(f"error: {e}")

    # 4. Stage 1: the teacher
    teacher_path = Path(args.teacher) if args.teacher else run.out / "teacher.pt"
    if args.stage in ("all", "teacher") and not (resume and resume["stage"] == "student"):
        s = setup_teacher(run, resume)
        run.print(f"teacher: {sum(p.numel() for p in s.raw.parameters()) / 1e6:.1f} M parameters, "
                  f"{args.teacher_iters} steps")
        train_stage(run, "teacher", s, dataset, args.teacher_iters, teacher_step, preview)
        teacher_path = run.out / "teacher.pt"
        del s
    if args.stage == "teacher":
        return finish(run)

    # 5. Stage 2: the student, distilled from the (EMA) teacher
    if resume and resume["stage"] == "student" and resume.get("teacher_path"):
        teacher_path = Path(resume["teacher_path"])
    try:
        teacher = load_checkpoint(teacher_path, kind="teacher", device=run.device)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        sys.exit(f"error: --teacher: {e}")
    if args.stage == "student" and teacher.cfg.codec != args.vae:
        sys.exit(f"error: --teacher {teacher_path} was trained with codec '{teacher.cfg.codec}', not --vae {args.vae}")
    s = setup_student(run, teacher, resume, clip, preview)
    s.teacher_path = str(teacher_path)
    run.print(f"student: from {teacher_path}, {args.student_iters} steps, adversarial from step {args.adv_start}")
    train_stage(run, "student", s, dataset, args.student_iters, student_step, preview)
    return finish(run)


def finish(run):
    if run.ddp:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
