"""
tools/bench.py: how fast training runs, part by part, and how fast each degradation is.

    python tools/bench.py --size base                     # the one-GPU run: base UNet, batch 32, 256² patches
    python tools/bench.py --size tiny --device cpu        # the CPU demo's networks

Any train.py flag applies (--batch-size, --patch-size, --precision, --compile, --clip, --w-ess, --data, ...).
The batch is real HR crops of --data (default: the demo photos), degraded on the device as in training;
the networks have random weights (speed does not depend on them), and so has CLIP, with the architecture
of --clip. Both stages run a few warm-up steps and then timed ones. Printed: ms/step, img/s and peak memory
of each stage's full step (train.teacher_step, train.student_step: the very functions training runs),
then the student step split into its parts, each timed alone (synchronized, median of the repeats), and
the time of degrade() on the same batch for every degradation.
"""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import losses  # noqa: E402
import train  # noqa: E402
from config import parse_args  # noqa: E402
from data import build_dataset  # noqa: E402
from degrade import DEGRADATIONS, degrade  # noqa: E402
from runtime import peak_memory, timed  # noqa: E402


def benchmark(run, warmup=3):
    a, dev = run.args, run.device
    reps = 10 if dev.type == "cuda" else 3

    def ms(fn):  # median over the repeats, each one synchronized
        return sorted(timed(lambda: fn(i), dev)[1] for i in range(reps))[reps // 2]

    crops = build_dataset(a.data, "train", a.patch_size)
    hr = torch.stack([crops[(i % len(crops), i)] for i in range(a.batch_size)]).to(dev)
    g = torch.Generator().manual_seed(0)
    _, lr = degrade(hr, run.deg, g)
    rows = []
    print(f"tools/bench.py: size {a.size}, batch {a.batch_size}, {a.patch_size}² HR crops of {crops.name}, "
          f"degradation {a.degradation}, {dev} "
          f"({torch.cuda.get_device_name(dev) if dev.type == 'cuda' else f'{torch.get_num_threads()} threads'}), "
          f"{str(run.dtype).removeprefix('torch.')}, compile {'on' if run.compile else 'off'}, "
          f"torch {torch.__version__}")

    # Teacher stage
    teacher = train.setup_teacher(run, None)
    for i in range(warmup):
        train.teacher_step(run, teacher, hr, i)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    step = ms(lambda i: train.teacher_step(run, teacher, hr, i))
    degradation = ms(lambda i: degrade(hr, run.deg, g))  # the same in both stages
    rows += [("teacher", "step, end to end", step, peak_memory(dev)), ("teacher", "  degradation", degradation, "")]

    # Student stage (the teacher: the random network above, frozen)
    a.adv_start = 0  # every timed step includes the discriminator
    clip = losses.load_clip(a.clip, pretrained=False).to(dev) if a.w_ess else None
    st = train.setup_student(run, teacher.trained.ema, None, clip)
    for i in range(warmup):
        train.student_step(run, st, hr, i)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    step = ms(lambda i: train.student_step(run, st, hr, i))
    student, disc = st.model, st.trained_d.net
    with run.autocast(), torch.no_grad():
        y0 = student.encode_lr(lr)
        x_T = student.prior_sample(y0, torch.randn_like(y0))
        sr = student.decode(student.one_step(x_T, lr, y0)).float()

    def student_fwd_bwd(i):
        with run.autocast():
            x0_hat = student.one_step(x_T, lr, y0)
            loss = losses.distillation(x0_hat, y0) + student.decode(x0_hat).float().mean()
        st.trained.step(loss, i)

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
            losses.g_hinge(disc(x)).backward()
        disc.requires_grad_(True)
        with run.autocast():
            d = losses.d_hinge(st.disc(hr), st.disc(sr))
        st.trained_d.step(d, i)
        disc.requires_grad_(False)

    with run.autocast():
        targets = ms(lambda i: losses.distillation_target(st.teacher, x_T, y0, lr))
    rows += [("student", "step, end to end", step, peak_memory(dev)),
             ("student", "  degradation", degradation, ""),
             ("student", f"  teacher targets ({st.teacher.cfg.T} steps, no grad)", targets, ""),
             ("student", "  student fwd/bwd + AdamW", ms(student_fwd_bwd), ""),
             ("student", f"  ESS fwd/bwd ({clip.name.split(' (')[0] if clip else 'off'})",
              ms(loss_fwd_bwd(lambda x: losses.ess(clip, x, hr))) if clip else 0.0, ""),
             ("student", "  HFP fwd/bwd", ms(loss_fwd_bwd(lambda x: losses.hfp(x, hr, a.hfp_cutoff))), ""),
             ("student", "  discriminator (G term + D step)", ms(disc_steps), "")]
    rows += [("degrade", f"  {name}", ms(lambda i: degrade(hr, cfg, g)), "") for name, cfg in DEGRADATIONS.items()]
    print(f"{'stage':<9}{'part':<46}{'ms':>9}{'img/s':>9}  peak memory")
    for name, part, t, mem in rows:
        ips = f"{1000 * a.batch_size / t:9.0f}" if mem else " " * 9
        print(f"{name:<9}{part:<46}{t:>9.1f}{ips}  {mem}".rstrip())
    return 0


def main(argv=None):
    args, _ = parse_args(argv)
    run = train.Run(args)
    torch.manual_seed(args.seed)
    return benchmark(run)


if __name__ == "__main__":
    sys.exit(main())
