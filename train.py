"""
train.py: train VPD-SR. Stage 1 trains the multi-step ResShift teacher; stage 2 distills it into the
one-step student with the distillation, ESS, HFP and adversarial losses (losses.py).

    python train.py --data DIV2K                       # one GPU, both stages, the base network's defaults
    python train.py --data demo --size tiny            # a tiny run on the demo photos: minutes on a laptop
    python train.py --data DIV2K --stage teacher       # one stage at a time; then:
    python train.py --data DIV2K --stage student --teacher runs/vpdsr/teacher.pt --out runs/student-b
    python train.py --data DIV2K --resume              # continue an interrupted run
    python train.py --size tiny --print-config          # every setting a run would use, and where it comes from

What --out (default runs/vpdsr) receives: teacher.pt and student.pt (inference checkpoints holding EMA
weights: sample.py and evaluate.py read these), last.pt (the full training state, for --resume: below),
config.json and log.jsonl (every loss term per logged step). Watch a run with the workbench: python
tools/preview.py runs/vpdsr (sample grids from its checkpoints), python tools/plot_losses.py runs/vpdsr.

A resumed run (--resume) continues exactly as the uninterrupted run would have: the same batches, the same
noise, the same weights, step for step (tests/test_train.py checks it), as long as it keeps the step counts
(the cosine decay is shaped by them), the device type (a CUDA generator draws other numbers than the CPU's)
and the precision and compilation (other arithmetic). What makes it exact:
  - last.pt holds, for the stage being trained, each trained network's bundle (Trained: its weights, its
    EMA, the optimizer, the learning-rate schedule and the fp16 loss scaler; the student's and the
    discriminator's in the student stage), the step, the run's settings `args` and, in the student stage,
    the teacher's path (save_state).
  - No random number generator's state needs saving, because every random draw is a function of
    (--seed, stage, step), re-derived at each step:
      the batch of HR crops      data.StepBatches: batch k (which photos, which crops) is seeded from
                                 (seed + stage, k), and a resumed loader starts at its step (start_step)
      the degradation            degrade() with the step's CPU generator (Run.generators)
      t and ε of a teacher step  the step's device generator (losses.teacher_loss)
      ε of a student step        the same, in its own stage's stream
  - Networks start from torch.manual_seed(--seed) (the teacher) or a copy of the teacher (the student); a
    resumed run loads them instead.
The file reads in the order a run goes: set-up (device, the trained networks), the two training
steps (the method itself), the loop that repeats them, and main(). The settings are config.py's.
"""

import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import torch

import losses
from checkpoint import atomic_save, load_checkpoint, save_checkpoint
from config import print_config, settings
from data import build_dataset, build_loader
from degrade import DEGRADATIONS, degrade
from model import ModelConfig, PatchGAN, SRModel, make_student
from runtime import autocast, resolve_device, resolve_precision

# --- Set-up: device, precision


class Run:
    """Everything a stage needs besides its networks: settings, device, precision, files, logging."""

    def __init__(self, args):
        self.args = args
        self.device = resolve_device(args.device)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        # runtime.py's policy: bf16 autocast where supported, fp16 (with a GradScaler) where not, fp32 on CPU
        self.dtype = resolve_precision(args.precision, self.device)
        self.compile = self.device.type == "cuda" if args.compile is None else args.compile
        self.deg = DEGRADATIONS[args.degradation]
        self.out = Path(args.out)
        self.bad = torch.zeros((), dtype=torch.bool, device=self.device)  # a non-finite loss was seen

    def autocast(self):
        return autocast(self.device, self.dtype)

    def print(self, *msg):
        from tqdm import tqdm

        tqdm.write(" ".join(map(str, msg)))

    def generators(self, stage, step):
        """(CPU generator, device generator) for one step: all randomness is a function of
        (seed, stage, step), so a resumed run draws exactly what an uninterrupted one would."""
        seed = hash((self.args.seed, stage, step)) & (2**63 - 1)
        g = torch.Generator().manual_seed(seed)
        dg = g if self.device.type == "cpu" else torch.Generator(self.device).manual_seed(seed ^ 0x5DEECE66D)
        return g, dg

    def wrap(self, net):
        """The one way a network is wrapped to run: compiled (on CUDA by default). Whoever holds the result
        keeps the unwrapped network too."""
        return torch.compile(net) if self.compile else net


# --- Set-up: one bundle per trained network, and the two stages


def warmup_schedule(opt, steps, total):
    """Linear warm-up over `steps` (step s uses (s + 1)/steps of the rate), then a cosine decay
    ½·(1 + cos(π·progress)) that reaches 0 at step `total`. A LambdaLR: its state resumes exactly. The
    discriminator's schedule counts its own steps: its warm-up begins at --adv-start, where it joins, and the
    student's last step cuts its decay off before it reaches 0."""

    def factor(s):
        if s < steps:
            return (s + 1) / steps
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (s - steps) / max(1, total - steps))))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


class Trained:
    """One trained network and everything that moves with it: its weights (`net`, unwrapped), their
    exponential moving average (`ema`: what teacher.pt and student.pt keep; for an SRModel only, not D), the
    AdamW optimizer, the learning-rate schedule and the fp16 loss scaler. last.pt holds its state_dict()."""

    def __init__(self, model, run, learning_rate, total, betas=(0.9, 0.999)):
        a = run.args
        self.ema_decay, self.grad_clip, self.net, self.ema = a.ema_decay, a.grad_clip, model, None
        if isinstance(model, SRModel):  # its UNet is trained; its EMA is a frozen copy of the model
            self.net, self.ema = model.net, SRModel(model.cfg, kind=model.kind).to(model.eta.device)
            self.ema.net.load_state_dict(model.net.state_dict())
            self.ema.requires_grad_(False).eval()
        self.opt = torch.optim.AdamW(self.net.parameters(), lr=learning_rate, betas=betas, weight_decay=0.0)
        self.sched = warmup_schedule(self.opt, a.warmup, total)
        self.scaler = torch.amp.GradScaler(run.device.type, enabled=run.dtype == torch.float16)

    def step(self, loss, n):
        """backward -> (unscale) -> clip -> step -> schedule, with fp16 loss scaling when enabled; then the
        EMA θ_ema ← d·θ_ema + (1 − d)·θ, its decay warmed up as d = min(--ema-decay, (1 + n)/(10 + n)) so that
        short runs still move it."""
        self.scaler.scale(loss).backward()
        if self.grad_clip:
            self.scaler.unscale_(self.opt)
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.grad_clip)
        self.scaler.step(self.opt)
        self.scaler.update()
        self.opt.zero_grad(set_to_none=True)
        self.sched.step()
        if self.ema is not None:
            with torch.no_grad():
                d = min(self.ema_decay, (1 + n) / (10 + n))
                torch._foreach_lerp_(list(self.ema.net.parameters()), list(self.net.parameters()), 1 - d)

    def parts(self):
        return {"net": self.net, "opt": self.opt, "sched": self.sched, "scaler": self.scaler,
                **({"ema": self.ema.net} if self.ema else {})}

    def state_dict(self):
        return {k: part.state_dict() for k, part in self.parts().items()}

    def load_state_dict(self, state):
        for k, part in self.parts().items():
            part.load_state_dict(state[k])


@dataclass
class Stage:
    """What a training step reads and updates. `model` is the network trained, as it runs (its .net
    wrapped by Run.wrap); `trained` holds its unwrapped weights and everything that moves with them."""

    name: str  # "teacher" or "student"
    model: SRModel
    trained: Trained
    teacher: Optional[SRModel] = None  # student stage: the frozen teacher S_θ (its EMA weights)
    disc: Optional[torch.nn.Module] = None  # student stage: the discriminator D as it runs
    trained_d: Optional[Trained] = None  # D's weights (unwrapped), optimizer, schedule, scaler
    clip: Optional[torch.nn.Module] = None  # the frozen encoder of ESS (None when --w-ess 0)
    teacher_path: str = ""
    start: int = 0  # the step to begin at (> 0 when resumed)


def setup_teacher(run, resume):
    a = run.args
    cfg = ModelConfig(size=a.size, T=a.diffusion_steps, kappa=a.kappa, min_noise_level=a.min_noise_level,
                      sigma_data=a.sigma_data)
    teacher = SRModel(cfg).to(run.device)
    st = Stage("teacher", teacher, Trained(teacher, run, a.learning_rate, a.teacher_iters))
    restore_state(st, resume)
    teacher.net = run.wrap(teacher.net)
    return st


def load_ess_encoder(run):
    """The frozen encoder of the ESS loss, loaded before any training so that missing weights fail at once."""
    if not run.args.w_ess:
        return None
    clip = losses.load_clip(run.args.clip).to(run.device)
    run.print(f"ESS encoder: {clip.name}")
    return clip


def setup_student(run, teacher, resume, clip, teacher_path=""):
    a = run.args
    teacher.eval().requires_grad_(False)  # S_θ: frozen; these are the teacher's EMA weights
    student = make_student(teacher).train()  # f_φ starts as a copy of the teacher
    disc = PatchGAN().to(run.device)
    st = Stage("student", student, Trained(student, run, a.learning_rate, a.student_iters), teacher=teacher,
               trained_d=Trained(disc, run, a.learning_rate_d, a.student_iters, betas=(0.5, 0.999)), clip=clip,
               teacher_path=str(teacher_path))
    restore_state(st, resume)
    student.net = run.wrap(student.net)
    teacher.net = run.wrap(teacher.net)
    st.disc = run.wrap(disc)
    disc.requires_grad_(False)  # on only during D's own step
    return st


def save_state(run, st, step):
    """last.pt: what continues this stage exactly (the module's docstring lists every random source and why
    none needs a saved state)."""
    bundles = {"trained": st.trained, "trained_d": st.trained_d}
    atomic_save({"stage": st.name, "step": step, **{k: b.state_dict() for k, b in bundles.items() if b},
                 "args": vars(run.args), "teacher_path": st.teacher_path}, run.out / "last.pt")


def restore_state(st, resume):
    """Continue from last.pt if it holds this stage."""
    if resume and resume["stage"] == st.name:
        st.trained.load_state_dict(resume["trained"])
        if st.trained_d:
            st.trained_d.load_state_dict(resume["trained_d"])
        st.start = resume["step"]


# --- One training step of each stage (the method; tools/bench.py times these very functions)


def teacher_step(run, st: Stage, hr, step):
    """ResShift: regress x₀ from x_t at a random t (losses.teacher_loss)."""
    g, dg = run.generators(0, step)
    # 1. degrade the HR batch into its LR input, on the device
    hr, lr = degrade(hr, run.deg, g)
    with run.autocast():
        # 2. latents: x₀ = encode(HR), y₀ = encode(bicubic↑LR)
        with torch.no_grad():  # (in fp32, whatever autocast would make of the bicubic upscale)
            x0, y0 = st.model.encode(hr).float(), st.model.encode_lr(lr).float()
        # 3. the forward process at a random t, and the regression of x₀: ‖x̂₀(x_t, LR, t) − x₀‖²
        loss = losses.teacher_loss(st.model, x0, y0, lr, run.args.p_last, dg)
    run.bad |= ~torch.isfinite(loss)
    # 4. optimizer step, then the EMA that teacher.pt keeps
    st.trained.step(loss, step)
    return {"loss": loss.detach()}


def student_step(run, st: Stage, hr, step):
    """VPD-SR: one student step and, from --adv-start (when --w-adv > 0), one discriminator step."""
    a = run.args
    g, dg = run.generators(1, step)
    # 1. degrade the HR batch into its LR input, on the device
    hr, lr = degrade(hr, run.deg, g)
    with run.autocast():
        # 2. x_T = y₀ + κ√η_T·ε from the LR image and fresh noise: built once, the start of both the
        #    teacher's sampler and the student's one call
        with torch.no_grad():
            y0 = st.model.encode_lr(lr).float()
            eps = torch.randn(y0.shape, generator=dg, device=hr.device, dtype=y0.dtype)
            x_T = st.model.prior_sample(y0, eps)
        # 3. the teacher's target: its deterministic T-step sample from this x_T (frozen, no grad)
        target = losses.distillation_target(st.teacher, x_T, y0, lr)
        # 4. the student: one call at t = T from the same x_T, decoded to an image (not clamped: see
        #    losses.py). At t = T, c_skip(T) ≈ 0 (η_T ≈ 1, so x_T carries almost nothing of x₀ − y₀), and
        #    the student is x̂₀ = y₀ + c_out(T)·F(c_in(T)·(x_T −
        #    y₀), LR, y₀, T): the bicubic latent plus a correction, where c_in(T)·(x_T − y₀) ≈ ε is the
        #    unit-variance noise the network reads beside its condition (model.py, SRModel.precond).
        x0_hat = st.model.one_step(x_T, lr, y0)
        sr = st.model.decode(x0_hat)
        # 5. the losses, each weighted and logged on its own
        terms = {"dist": losses.distillation(x0_hat, target)}
        if a.w_ess:
            terms["ess"] = losses.ess(st.clip, sr, hr)
        if a.w_hfp:
            terms["hfp"] = losses.hfp(sr, hr, a.hfp_cutoff)
        adversarial = a.w_adv > 0 and step >= a.adv_start
        if adversarial:  # through D, whose weights take no gradient here
            terms["adv"] = losses.g_hinge(st.trained_d.net(sr))
        weights = {"dist": a.w_dist, "ess": a.w_ess, "hfp": a.w_hfp, "adv": a.w_adv}
        loss = sum(weights[k] * v for k, v in terms.items())
    run.bad |= ~torch.isfinite(loss)
    # 6. student step, and its EMA (what student.pt keeps)
    st.trained.step(loss, step)
    # 7. discriminator step: real HR patches against the student's (detached) outputs. D's schedule steps
    #    only here, so it counts D's own steps, from --adv-start.
    if adversarial:
        st.trained_d.net.requires_grad_(True)
        with run.autocast():
            terms["d"] = losses.d_hinge(st.disc(hr), st.disc(sr.detach()))
        run.bad |= ~torch.isfinite(terms["d"])
        st.trained_d.step(terms["d"], step)
        st.trained_d.net.requires_grad_(False)
    terms["total"] = loss
    return {k: v.detach() for k, v in terms.items()}


# --- The loop both stages share


def train_stage(run, st, dataset, iters, step_fn):
    """data -> step_fn -> log / checkpoint, from st.start to `iters`."""
    from tqdm import tqdm

    a, name = run.args, st.name
    loader = iter(build_loader(dataset, a.batch_size, a.workers, a.seed + (name == "student"), run.device,
                               start_step=st.start))
    bar = tqdm(total=iters, initial=st.start, desc=name, dynamic_ncols=True)
    saved = st.start or None  # the step of the last good last.pt this run can vouch for
    sums, counts, t_log, n_log = {}, {}, time.perf_counter(), 0
    for step in range(st.start, iters):
        hr = next(loader).to(run.device, non_blocking=True)
        learning_rate = st.trained.sched.get_last_lr()[0]  # the rate this step uses
        terms = step_fn(run, st, hr, step)
        for k, v in terms.items():  # (adv and d exist only from --adv-start: each term averages its own steps)
            sums[k], counts[k] = sums.get(k, 0) + v, counts.get(k, 0) + 1
        n_log, done = n_log + 1, step + 1
        bar.update(1)
        log, ckpt = done % a.log_every == 0 or done == iters, done % a.ckpt_every == 0 or done == iters
        if (log or ckpt) and run.bad.item():  # (a sync: only at these steps)
            stop_on_nan(run, name, done, saved)
        if log:
            rec = {"stage": name, "step": done, **{k: (v / counts[k]).item() for k, v in sums.items()},
                   "learning_rate": learning_rate,
                   "img_per_s": n_log * a.batch_size / (time.perf_counter() - t_log)}
            bar.set_postfix({k: f"{v:.4g}" for k, v in rec.items() if k not in ("stage", "step", "learning_rate")})
            with open(run.out / "log.jsonl", "a") as f:
                f.write(json.dumps(rec) + "\n")
            sums, counts, t_log, n_log = {}, {}, time.perf_counter(), 0
        if ckpt:
            save_checkpoint(run.out / f"{name}.pt", st.trained.ema, a.degradation, done)
            save_state(run, st, done)
            saved = done
    bar.close()
    run.print(f"{name} done: {run.out / f'{name}.pt'}")


def stop_on_nan(run, name, step, saved):
    kept = f"the last good checkpoint is {run.out / 'last.pt'} (step {saved})" if saved else \
        "no checkpoint was written before it"
    run.print(f"error: a loss became NaN or infinite in the {name} stage by step {step}; {kept}. "
              "Try a lower --learning-rate, --precision fp32, or a smaller --grad-clip.")
    sys.exit(1)


# --- Main


def main(argv=None):
    # 1. The settings, and the run folder: a fresh one, or the state (and settings) of the run to resume
    args, given, resume, restored = settings(argv)
    if args.print_config:
        return print_config(args, given, restored)
    run = Run(args)
    torch.manual_seed(args.seed)
    if resume:
        run.print(f"resuming {run.out}: {resume['stage']} stage, step {resume['step']}"
                  + (f"; with the run's own {', '.join(restored)}" if restored else ""))
    run.out.mkdir(parents=True, exist_ok=True)
    if not args.resume and (run.out / "log.jsonl").exists():
        (run.out / "log.jsonl").unlink()
    config = {"args": vars(args), "degradation": asdict(run.deg), "device": str(run.device),
              "dtype": str(run.dtype), "torch": torch.__version__}
    (run.out / "config.json").write_text(json.dumps(config, indent=2))

    # 2. Data: random HR crops; the degradation into LR inputs happens on the device, inside each step
    try:
        dataset = build_dataset(args.data, "train", args.patch_size)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")
    run.print(f"{len(dataset)} training images from {dataset.name}; on {run.device}, "
              f"{str(run.dtype).removeprefix('torch.')}, compile {'on' if run.compile else 'off'}")

    # 3. The ESS encoder, loaded now: weights that cannot be had should stop the run before training, not after
    try:
        clip = load_ess_encoder(run) if args.stage != "teacher" else None
    except (RuntimeError, ValueError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")

    # 4. Stage 1: the teacher
    teacher_path = Path(args.teacher) if args.teacher else run.out / "teacher.pt"
    if args.stage in ("all", "teacher") and not (resume and resume["stage"] == "student"):
        st = setup_teacher(run, resume)
        run.print(f"teacher: {sum(p.numel() for p in st.trained.net.parameters()) / 1e6:.1f} M parameters, "
                  f"{args.teacher_iters} steps")
        train_stage(run, st, dataset, args.teacher_iters, teacher_step)
        teacher_path = run.out / "teacher.pt"
        del st

    # 5. Stage 2: the student, distilled from the (EMA) teacher
    if args.stage != "teacher":
        if resume and resume["stage"] == "student":
            teacher_path = Path(resume["teacher_path"])
        try:
            teacher = load_checkpoint(teacher_path, kind="teacher", device=run.device)
        except (FileNotFoundError, ValueError, RuntimeError) as e:
            sys.exit(f"error: --teacher: {e}")
        st = setup_student(run, teacher, resume, clip, teacher_path)
        run.print(f"student: from {teacher_path}, {args.student_iters} steps, adversarial from step {args.adv_start}")
        train_stage(run, st, dataset, args.student_iters, student_step)
    return 0


if __name__ == "__main__":
    sys.exit(main())
