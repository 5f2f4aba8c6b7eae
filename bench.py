"""
bench.py: how fast training runs, part by part.

    python bench.py --preset base                       # the one-GPU recipe: base UNet, batch 32, 256² patches
    python bench.py --preset tiny --device cpu          # the CPU demo's networks

Any train.py flag applies (--batch-size, --patch-size, --precision, --compile, --clip, --w-ess, ...). Both
stages run a few warm-up steps and then timed ones on synthetic data (random HR crops, degraded on the
device as in training) with random weights: speed does not depend on them. Printed: ms/step, img/s and
peak memory of each stage's full step (train.teacher_step, train.student_step: the very functions training
runs), then the student step split into its parts, each timed alone (synchronized, median of the repeats),
to show where the time goes.
"""

import sys

import torch

import losses as L
import train as T
from config import parse_args
from degrade import degrade
from runtime import peak_memory, timed


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
    print(f"bench.py: preset {a.preset}, batch {a.batch_size}, {a.patch_size}² HR patches, {dev} "
          f"({torch.cuda.get_device_name(dev) if dev.type == 'cuda' else f'{torch.get_num_threads()} threads'}), "
          f"{str(run.dtype).removeprefix('torch.')}, compile {'on' if run.compile else 'off'}, "
          f"torch {torch.__version__}")

    # Teacher stage
    teacher = T.setup_teacher(run, None)
    for i in range(warmup):
        T.teacher_step(run, teacher, hr, i)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    step = ms(lambda i: T.teacher_step(run, teacher, hr, i))
    degradation = ms(lambda i: degrade(hr, run.deg, g))  # the same in both stages
    rows += [("teacher", "step, end to end", step, peak_memory(dev)), ("teacher", "  degradation", degradation, "")]

    # Student stage (the teacher: the random network above, frozen)
    a.adv_start = 0  # every timed step includes the discriminator
    clip = L.load_clip(a.clip, pretrained=False).to(dev) if a.w_ess else None
    stage = T.setup_student(run, teacher.ema, None, clip)
    for i in range(warmup):
        T.student_step(run, stage, hr, i)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    step = ms(lambda i: T.student_step(run, stage, hr, i))
    with run.autocast(), torch.no_grad():
        student = stage.student
        y0 = student.encode_lr(lr)
        x_T = student.prior_sample(y0, torch.randn_like(y0))
        sr = student.decode(student.one_step(x_T, lr, y0)).float()

    def student_fwd_bwd(i):
        with run.autocast():
            x0_hat = student.one_step(x_T, lr, y0)
            loss = L.distillation(x0_hat, y0) + student.decode(x0_hat).float().mean()
        T.optimize(loss, stage.opt, stage.sched, stage.scaler, stage.raw.parameters(), a.grad_clip)

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
            L.g_hinge(stage.raw_disc(x)).backward()
        stage.raw_disc.requires_grad_(True)
        with run.autocast():
            d = L.d_hinge(stage.disc(hr), stage.disc(sr))
        T.optimize(d, stage.opt_d, stage.sched_d, stage.scaler_d, stage.raw_disc.parameters(), a.grad_clip)
        stage.raw_disc.requires_grad_(False)

    with run.autocast():
        targets = ms(lambda i: L.distillation_target(stage.teacher, x_T, y0, lr))
    rows += [("student", "step, end to end", step, peak_memory(dev)),
             ("student", "  degradation", degradation, ""),
             ("student", f"  teacher targets ({stage.teacher.cfg.T} steps, no grad)", targets, ""),
             ("student", "  student fwd/bwd + AdamW", ms(student_fwd_bwd), ""),
             ("student", f"  CLIP ESS fwd/bwd ({clip.name if clip else 'off'})",
              ms(loss_fwd_bwd(lambda x: L.ess(clip, x, hr))) if clip else 0.0, ""),
             ("student", "  HFP fwd/bwd", ms(loss_fwd_bwd(lambda x: L.hfp(x, hr, a.hfp_cutoff))), ""),
             ("student", "  discriminator (G term + D step)", ms(disc_steps), "")]
    print(f"{'stage':<9}{'part':<46}{'ms':>9}{'img/s':>9}  peak memory")
    for name, part, t, mem in rows:
        ips = f"{1000 * a.batch_size / t:9.0f}" if mem else " " * 9
        print(f"{name:<9}{part:<46}{t:>9.1f}{ips}  {mem}".rstrip())
    return 0


def main(argv=None):
    args, _ = parse_args(argv)
    run = T.Run(args)
    torch.manual_seed(args.seed)
    return benchmark(run)


if __name__ == "__main__":
    sys.exit(main())
