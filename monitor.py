"""
monitor.py: what a person watches while train.py runs: sample grids on a fixed batch, every --sample-every
steps, in <out>/samples/ (LR | teacher | HR in the teacher stage, LR | teacher | student | HR in the
student stage) and loss curves (<out>/loss_<stage>.png, from
log.jsonl).
"""

import json

import torch

from degrade import degrade


def make_preview(run, dataset, n=4):
    """A fixed batch (the same crops and degradations all run long) for the sample grids."""
    hr = torch.stack([dataset[(i % len(dataset), 1000 + i)] for i in range(n)]).to(run.device)
    return degrade(hr, run.deg, torch.Generator().manual_seed(run.args.seed))


def preview_noise(model, lr):
    """The same ε for every sample grid of a run."""
    shape = (lr.shape[0], model.codec.channels, *lr.shape[-2:])
    return torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(lr.device)


@torch.no_grad()
def save_samples(run, name, step, st, preview):
    """A grid, one row per image: LR (nearest ↑) | teacher (T steps) | [student (1 step)] | HR."""
    from torchvision.utils import save_image

    hr, lr = preview
    eps = preview_noise(st.ema, lr)
    with run.autocast():
        columns = [lr.repeat_interleave(4, -2).repeat_interleave(4, -1)]
        if name == "teacher":
            columns.append(st.ema.upscale(lr, eps))
        else:
            columns += [st.preview_teacher, st.ema.upscale(lr, eps)]
        columns.append(hr)
    grid = torch.stack([c.float().clamp(0, 1) for c in columns], 1).flatten(0, 1)
    (run.out / "samples").mkdir(exist_ok=True)
    save_image(grid, run.out / "samples" / f"{name}_{step:06d}.png", nrow=len(columns), padding=2, pad_value=1)


def plot_losses(run, name):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = [json.loads(line) for line in open(run.out / "log.jsonl")]
    recs = [r for r in recs if r["stage"] == name]
    if not recs:
        return
    keys = [k for k in recs[-1] if k not in ("stage", "step", "learning_rate", "img_per_s")]
    fig, ax = plt.subplots(figsize=(7, 4))
    for k in keys:
        ax.plot([r["step"] for r in recs if k in r], [abs(r[k]) for r in recs if k in r], label=k)
    ax.set(xlabel="step", ylabel="loss (absolute value)", yscale="log", title=f"{name} stage: {run.out}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(run.out / f"loss_{name}.png", dpi=100)
    plt.close(fig)
