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
Continue an interrupted run (on the same number of processes):
    python train.py --data DIV2K --resume
Measure speed (ms/step per part, on synthetic data): python bench.py --preset base

What --out (default runs/vpdsr) receives: teacher.pt and student.pt (inference checkpoints holding EMA
weights: sample.py and evaluate.py read these), last.pt (the full training state, for --resume: below),
config.json, log.jsonl (every loss term per logged step), samples/<stage>_<step>.png (LR | teacher | HR in
the teacher stage, LR | teacher | student | HR in the student stage) and loss_<stage>.png.

A resumed run (--resume) continues exactly as the uninterrupted run would have: the same batches, the same
noise, the same weights, step for step (tests/test_train.py checks it). What makes it exact:
  - last.pt holds, for the stage being trained: the network, its one EMA, the optimizer, the learning-rate
    schedule and the fp16 loss scaler (and the same four for the discriminator in the student stage), the
    step, the run's settings `args`, the number of processes and, in the student stage, the teacher's path
    (STATE_KEYS, save_state).
  - No random number generator's state needs saving, because every random draw is a function of
    (--seed, stage, step, process rank), re-derived at each step:
      the batch of HR crops      data.StepBatches: batch k (which photos, which crops) is seeded from
                                 (seed + stage, k), and a resumed loader starts at its step (start_step)
      the degradation            degrade() with the step's CPU generator (Run.generators)
      t and ε of a teacher step  the step's device generator (draw_timesteps, torch.randn)
      ε of a student step        the same, in its own stage's stream
      the sample grids           a fixed batch and a fixed ε (monitor.py), never the training streams
  - Networks start from torch.manual_seed(--seed) (the teacher) or a copy of the teacher (the student); a
    resumed run loads them instead.

The file reads in the order a run goes: set-up (processes, device, networks), the two training steps
(the method itself), the loop that repeats them, and main(). The settings (recipes, presets, flags) are
config.py's; sample grids and loss curves, monitor.py's; the speed harness (python bench.py), bench.py's,
which imports this file (and not the other way round).
"""

import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Optional

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

import losses as L
from checkpoint import atomic_save, load_checkpoint, save_checkpoint
from config import DEGRADATIONS, parse_args, resume_settings
from data import build_dataset, build_loader
from degrade import degrade
from model import ModelConfig, PatchGAN, SRModel, make_student
from monitor import make_preview, plot_losses, preview_noise, save_samples
from runtime import autocast, resolve_device, resolve_precision

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
            self.device = resolve_device(args.device)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        self.main = self.rank == 0
        # runtime.py's policy: bf16 autocast where supported, fp16 (with a GradScaler) where not, fp32 on CPU
        self.dtype = resolve_precision(args.precision, self.device, quiet=not self.main)
        self.compile = self.device.type == "cuda" if args.compile is None else args.compile
        self.deg = replace(DEGRADATIONS[args.degradation], scale=4)
        self.out = Path(args.out)
        self.bad = torch.zeros((), dtype=torch.bool, device=self.device)  # a non-finite loss was seen

    def autocast(self):
        return autocast(self.device, self.dtype)

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


# ---------------------------------------------------------------------------------------------------
# Set-up: the networks and optimizers of each stage
# ---------------------------------------------------------------------------------------------------


@dataclass
class TeacherStage:
    """What a teacher step reads and updates."""

    teacher: SRModel  # f_θ as it runs: its .net is the compiled (and, under DDP, wrapped) network
    raw: torch.nn.Module  # the same network unwrapped: what the optimizer updates and the EMA follows
    ema: SRModel  # the exponential moving average of raw's weights: what teacher.pt keeps
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    start: int = 0  # the step to begin at (> 0 when resumed)


@dataclass
class StudentStage:
    """What a student step reads and updates: the student f_φ, the frozen teacher and the discriminator D."""

    teacher: SRModel  # frozen (its EMA weights), compiled
    student: SRModel  # f_φ as it runs (compiled / wrapped network), a copy of the teacher at step 0
    raw: torch.nn.Module  # f_φ's network unwrapped
    ema: SRModel  # what student.pt keeps
    disc: torch.nn.Module  # D as it runs
    raw_disc: torch.nn.Module  # D unwrapped: its weights take gradients only in D's own step
    clip: Optional[torch.nn.Module]  # the frozen CLIP image encoder of ESS (None when --w-ess 0)
    opt: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    sched_d: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    scaler_d: torch.amp.GradScaler
    teacher_path: str = ""
    preview_teacher: Optional[torch.Tensor] = None  # the teacher's column of the sample grids, made once
    start: int = 0


def setup_teacher(run, resume):
    a = run.args
    cfg = ModelConfig(preset=a.preset, codec=a.vae, codec_subfolder=a.vae_subfolder, T=a.diffusion_steps,
                      kappa=a.kappa, min_noise_level=a.min_noise_level, param=a.param, sigma_data=a.sigma_data,
                      cond=a.cond)
    teacher = SRModel(cfg).to(run.device)
    ema = SRModel(cfg, codec=teacher.codec).to(run.device).requires_grad_(False).eval()
    ema.net.load_state_dict(teacher.net.state_dict())
    opt = torch.optim.AdamW(teacher.net.parameters(), lr=a.learning_rate, weight_decay=0.0)
    stage = TeacherStage(teacher=teacher, raw=teacher.net, ema=ema, opt=opt,
                         sched=warmup_schedule(opt, a.warmup, a.lr_schedule, a.teacher_iters), scaler=run.scaler())
    restore_state(stage, "teacher", resume)
    teacher.net = run.wrap(stage.raw)
    return stage


def load_ess_encoder(run):
    """The frozen CLIP of the ESS loss, loaded before any training so that missing weights fail at once."""
    if not run.args.w_ess:
        return None
    clip = L.load_clip(run.args.clip).to(run.device)
    if not clip.semantic:
        run.print(f"note: ESS uses a randomly initialised CLIP ({clip.name}): it is not semantic")
    elif isinstance(clip, L.VGGGlobalEncoder):
        run.print(f"note: ESS uses {clip.name}, not CLIP")
    return clip


def setup_student(run, teacher, resume, clip, preview=None, teacher_path=""):
    a = run.args
    teacher.eval().requires_grad_(False)  # S_θ: frozen; these are the teacher's EMA weights
    student = make_student(teacher).train()  # f_φ starts as a copy of the teacher
    ema = make_student(teacher).requires_grad_(False).eval()
    raw_disc = PatchGAN().to(run.device)
    preview_teacher = None
    if preview is not None and run.main:  # the frozen teacher's sample grid column, computed once, uncompiled
        with torch.no_grad(), run.autocast():
            preview_teacher = teacher.upscale(preview[1], preview_noise(teacher, preview[1]))
    opt = torch.optim.AdamW(student.net.parameters(), lr=a.learning_rate, weight_decay=0.0)
    opt_d = torch.optim.AdamW(raw_disc.parameters(), lr=a.learning_rate_d, betas=(0.5, 0.999), weight_decay=0.0)
    stage = StudentStage(teacher=teacher, student=student, raw=student.net, ema=ema, disc=raw_disc,
                         raw_disc=raw_disc, clip=clip, opt=opt, opt_d=opt_d,
                         sched=warmup_schedule(opt, a.warmup, a.lr_schedule, a.student_iters),
                         sched_d=warmup_schedule(opt_d, a.warmup, a.lr_schedule, a.student_iters),
                         scaler=run.scaler(), scaler_d=run.scaler(), teacher_path=str(teacher_path),
                         preview_teacher=preview_teacher)
    restore_state(stage, "student", resume)
    student.net = run.wrap(stage.raw)
    teacher.net = run.wrap(teacher.net, train=False)
    stage.disc = run.wrap(raw_disc)  # (DDP must see D's parameters requiring grad when it wraps them)
    raw_disc.requires_grad_(False)  # on only during D's own step
    return stage


# What last.pt holds of each stage, besides its EMA network: enough to continue exactly (the module's
# docstring lists every random source and why none needs a saved state).
STATE_KEYS = {"teacher": ("raw", "opt", "sched", "scaler"),
              "student": ("raw", "opt", "sched", "scaler", "raw_disc", "opt_d", "sched_d", "scaler_d")}


def save_state(run, stage, name, step):
    state = {k: getattr(stage, k).state_dict() for k in STATE_KEYS[name]}
    atomic_save({"stage": name, "step": step, "ema": stage.ema.net.state_dict(), **state, "args": vars(run.args),
                 "world_size": run.world, "teacher_path": getattr(stage, "teacher_path", None)},
                run.out / "last.pt")


def restore_state(stage, name, resume):
    """Continue from last.pt if it holds this stage: weights, optimizer, schedule, scaler, EMA, step."""
    if resume and resume["stage"] == name:
        for k in STATE_KEYS[name]:
            getattr(stage, k).load_state_dict(resume[k])
        stage.ema.net.load_state_dict(resume["ema"])
        stage.start = resume["step"]


# ---------------------------------------------------------------------------------------------------
# Optimization: one update, the learning-rate schedule, the EMA
# ---------------------------------------------------------------------------------------------------


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
# One training step of each stage (the method; bench.py times these very functions)
# ---------------------------------------------------------------------------------------------------


def teacher_step(run, st: TeacherStage, hr, step):
    """ResShift: regress x₀ from x_t at a random t."""
    g, dg = run.generators(0, step)
    # 1. degrade the HR batch into its LR input, on the device
    hr, lr = degrade(hr, run.deg, g)
    with run.autocast():
        # 2. latents: x₀ = encode(HR), y₀ = encode(bicubic↑LR)
        with torch.no_grad():  # (in fp32: an autoencoder under autocast would hand back bf16 latents)
            x0, y0 = st.teacher.encode(hr).float(), st.teacher.encode_lr(lr).float()
        # 3. the forward process at t in 1..T (draw_timesteps: t = T for a share --p-last of the samples):
        #    x_t = x₀ + η_t·(y₀ − x₀) + κ·√η_t·ε
        t = draw_timesteps(st.teacher.cfg.T, hr.shape[0], run.args.p_last, dg, hr.device)
        eps = torch.randn(x0.shape, generator=dg, device=hr.device, dtype=x0.dtype)
        x_t = st.teacher.q_sample(x0, y0, t, eps)
        # 4. estimate x₀ and regress: ‖f_θ(x_t, LR, t) − x₀‖², weighted over t by --loss-weight
        weight = st.teacher.loss_weight(t, run.args.loss_weight)
        loss = L.teacher_loss(st.teacher(x_t, lr, t, y0), x0, weight)
    run.bad |= ~torch.isfinite(loss)
    # 5. optimizer step, then the EMA that teacher.pt keeps
    optimize(loss, st.opt, st.sched, st.scaler, st.raw.parameters(), run.args.grad_clip)
    ema_update(st.ema.net, st.raw, run.args.ema, step)
    return {"loss": loss.detach()}


def draw_timesteps(T, n, p_last, generator, device):
    """t for n samples: uniform over 1..T (ResShift), or, with p_last, t = T with probability p_last and
    uniform over 1..T−1 otherwise. The one-step student and the teacher's one call run at t = T alone, so
    the share of steps spent there sets how fast they learn; the rest keeps the sampler's later steps
    trained."""
    if p_last is None:
        return torch.randint(1, T + 1, (n,), generator=generator, device=device)
    last = torch.rand(n, generator=generator, device=device) < p_last
    return torch.where(last, T, torch.randint(1, T, (n,), generator=generator, device=device))


def student_step(run, st: StudentStage, hr, step):
    """VPD-SR: one student step and one discriminator step."""
    a = run.args
    g, dg = run.generators(1, step)
    # 1. degrade the HR batch into its LR input, on the device
    hr, lr = degrade(hr, run.deg, g)
    with run.autocast():
        # 2. x_T = y₀ + κ√η_T·ε from the LR image and fresh noise: built once, the start of both the
        #    teacher's sampler and the student's one call
        with torch.no_grad():
            y0 = st.student.encode_lr(lr).float()
            eps = torch.randn(y0.shape, generator=dg, device=hr.device, dtype=y0.dtype)
            x_T = st.student.prior_sample(y0, eps)
        # 3. the teacher's target: its deterministic T-step sample from this x_T (frozen, no grad)
        target = L.distillation_target(st.teacher, x_T, y0, lr)
        # 4. the student: one call at t = T from the same x_T, decoded to an image. Under the precond
        #    parametrisation (the default recipe) c_skip(T) ≈ 0 (η_T ≈ 1, so x_T carries almost nothing
        #    of x₀ − y₀), and the student is x̂₀ = y₀ + c_out(T)·F(c_in(T)·(x_T − y₀), LR, y₀, T): the bicubic
        #    latent plus a correction, where c_in(T)·(x_T − y₀) ≈ ε is the unit-variance noise the
        #    network reads beside its condition (model.py, SRModel.precond).
        x0_hat = st.student.one_step(x_T, lr, y0)
        sr = st.student.decode(x0_hat)
        # 5. the losses, each weighted and logged on its own
        terms = {"dist": L.distillation(x0_hat, target)}
        if a.w_ess:
            terms["ess"] = L.ess(st.clip, sr, hr)
        if a.w_hfp:
            terms["hfp"] = L.hfp(sr, hr, a.hfp_cutoff)
        adversarial = a.w_adv > 0 and step >= a.adv_start
        if adversarial:  # D's weights take no gradient here (raw_disc: outside DDP, requires_grad off)
            terms["adv"] = L.g_hinge(st.raw_disc(sr))
        weights = {"dist": a.w_dist, "ess": a.w_ess, "hfp": a.w_hfp, "adv": a.w_adv}
        loss = sum(weights[k] * v for k, v in terms.items())
    run.bad |= ~torch.isfinite(loss)
    # 6. student step, and its EMA (what student.pt keeps)
    optimize(loss, st.opt, st.sched, st.scaler, st.raw.parameters(), a.grad_clip)
    ema_update(st.ema.net, st.raw, a.ema, step)
    # 7. discriminator step: real HR patches against the student's (detached) outputs
    if adversarial:
        st.raw_disc.requires_grad_(True)
        with run.autocast():
            terms["d"] = L.d_hinge(st.disc(hr), st.disc(sr.detach()))
        run.bad |= ~torch.isfinite(terms["d"])
        optimize(terms["d"], st.opt_d, st.sched_d, st.scaler_d, st.raw_disc.parameters(), a.grad_clip)
        st.raw_disc.requires_grad_(False)
    terms["total"] = loss
    return {k: v.detach() for k, v in terms.items()}


# ---------------------------------------------------------------------------------------------------
# The loop both stages share
# ---------------------------------------------------------------------------------------------------


def train_stage(run, name, st, dataset, iters, step_fn, preview):
    """The loop shared by both stages: data -> step_fn -> log / sample / checkpoint. `st`: the stage's
    TeacherStage or StudentStage; `name`: "teacher" or "student"."""
    from tqdm import tqdm

    a = run.args
    loader = iter(build_loader(dataset, a.batch_size, a.workers, a.seed + (name == "student"), run.device,
                               start_step=st.start, rank=run.rank, world=run.world))
    bar = tqdm(total=iters, initial=st.start, desc=name, disable=not run.main, dynamic_ncols=True)
    saved = st.start or None  # the step of the last good last.pt this run can vouch for
    sums, counts, t_log, n_log = {}, {}, time.perf_counter(), 0
    for step in range(st.start, iters):
        hr = next(loader).to(run.device, non_blocking=True)
        learning_rate = st.sched.get_last_lr()[0]  # the rate this step uses
        terms = step_fn(run, st, hr, step)
        for k, v in terms.items():  # (adv and d exist only from --adv-start: each term averages its own steps)
            sums[k], counts[k] = sums.get(k, 0) + v, counts.get(k, 0) + 1
        n_log, done = n_log + 1, step + 1
        bar.update(1)
        if done % a.log_every == 0 or done == iters:
            if run.any_bad():
                stop_on_nan(run, name, done, saved)
            dt = time.perf_counter() - t_log
            rec = {"stage": name, "step": done, **{k: (v / counts[k]).item() for k, v in sums.items()},
                   "learning_rate": learning_rate, "img_per_s": n_log * a.batch_size * run.world / dt}
            bar.set_postfix({k: f"{v:.4g}" for k, v in rec.items() if k not in ("stage", "step", "learning_rate")})
            if run.main:
                with open(run.out / "log.jsonl", "a") as f:
                    f.write(json.dumps(rec) + "\n")
            sums, counts, t_log, n_log = {}, {}, time.perf_counter(), 0
        if run.main and (done % a.sample_every == 0 or done == iters):
            save_samples(run, name, done, st, preview)
        if done % a.ckpt_every == 0 or done == iters:
            if run.any_bad():
                stop_on_nan(run, name, done, saved)
            if run.main:
                save_checkpoint(run.out / f"{name}.pt", st.ema, step=done)
                save_state(run, st, name, done)
            saved = done
            if run.ddp:
                dist.barrier()  # no process moves on (to read teacher.pt, say) before the files exist
    bar.close()
    if run.main:
        plot_losses(run, name)
        run.print(f"{name} done: {run.out / f'{name}.pt'}")


def stop_on_nan(run, name, step, saved):
    kept = f"the last good checkpoint is {run.out / 'last.pt'} (step {saved})" if saved else \
        "no checkpoint was written before it"
    run.print(f"error: a loss became NaN or infinite in the {name} stage by step {step}; {kept}. "
              "Try a lower --lr, --precision fp32, or a smaller --grad-clip.")
    sys.exit(1)


# ---------------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------------


def main(argv=None):
    args, given = parse_args(argv)

    # 1. The run folder: a fresh one, or the state (and settings) of the run to resume
    resume, restored = None, []
    last = Path(args.out) / "last.pt"
    if args.resume:
        if not last.exists():
            sys.exit(f"error: --resume, but {last} does not exist (nothing to resume)")
        resume = torch.load(last, map_location="cpu", weights_only=True)
        world = int(os.environ.get("WORLD_SIZE", 1))  # (torchrun sets it; the processes are not up yet)
        restored = resume_settings(args, given, resume, world)
    elif last.exists() and not args.overwrite:
        sys.exit(f"error: {args.out} already holds a run: --resume to continue it, --overwrite to start "
                 "again, or --out for a new folder")
    run = Run(args)
    torch.manual_seed(args.seed)
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
        dataset = build_dataset(args.data, "train", args.patch_size, args.download, min_scale=args.min_scale)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        sys.exit(f"error: {e}")
    run.print(f"{len(dataset)} training images from {dataset.name}; {run.world} process(es) on {run.device}, "
              f"{str(run.dtype).removeprefix('torch.')}, compile {'on' if run.compile else 'off'}")
    preview = make_preview(run, dataset)

    # 3. The ESS encoder, loaded now: weights that cannot be had should stop the run before training, not after
    try:
        clip = load_ess_encoder(run) if args.stage != "teacher" else None
    except (RuntimeError, ValueError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")

    # 4. Stage 1: the teacher
    teacher_path = Path(args.teacher) if args.teacher else run.out / "teacher.pt"
    if args.stage in ("all", "teacher") and not (resume and resume["stage"] == "student"):
        stage = setup_teacher(run, resume)
        run.print(f"teacher: {sum(p.numel() for p in stage.raw.parameters()) / 1e6:.1f} M parameters, "
                  f"{args.teacher_iters} steps")
        train_stage(run, "teacher", stage, dataset, args.teacher_iters, teacher_step, preview)
        teacher_path = run.out / "teacher.pt"
        del stage
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
    stage = setup_student(run, teacher, resume, clip, preview, teacher_path)
    run.print(f"student: from {teacher_path}, {args.student_iters} steps, adversarial from step {args.adv_start}")
    train_stage(run, "student", stage, dataset, args.student_iters, student_step, preview)
    return finish(run)


def finish(run):
    if run.ddp:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
