"""
tools/preview.py: what a train.py run has learned so far, as a picture: on fixed crops of its training
photos, degraded as in training, one row per crop: LR (nearest ↑) | teacher (its sampler, all T steps) |
student (one step, once student.pt exists) | HR. Run it at any time, while the run trains or after.

    python tools/preview.py runs/vpdsr                     # -> runs/vpdsr/samples/preview_t<step>_s<step>.png

The crops, their degradations and the noise ε are fixed (--seed), so successive previews of a run differ
only by what the networks learned. The settings (data, crop size, degradation) are the run's config.json.
"""

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from checkpoint import load_checkpoint  # noqa: E402
from data import build_dataset  # noqa: E402
from degrade import DEGRADATIONS, SCALE, degrade  # noqa: E402
from model import LATENT_CHANNELS  # noqa: E402


@torch.no_grad()
def preview(run_dir, n=4, seed=0):
    """Write and return the preview grid of the run in run_dir."""
    from torchvision.utils import save_image

    run_dir = Path(run_dir)
    args = json.loads((run_dir / "config.json").read_text())["args"]
    models = [load_checkpoint(run_dir / f"{k}.pt", kind=k) for k in ("teacher", "student")
              if (run_dir / f"{k}.pt").is_file()]
    if not models:
        raise FileNotFoundError(f"{run_dir} holds no teacher.pt or student.pt yet")
    crops = build_dataset(args["data"], "train", args["patch_size"])
    hr = torch.stack([crops[(i % len(crops), 1000 + i)] for i in range(n)])
    hr, lr = degrade(hr, DEGRADATIONS[args["degradation"]], torch.Generator().manual_seed(seed))
    eps = torch.randn((n, LATENT_CHANNELS, *lr.shape[-2:]), generator=torch.Generator().manual_seed(seed))
    columns = [lr.repeat_interleave(SCALE, -2).repeat_interleave(SCALE, -1)]
    columns += [m.upscale(lr, eps) for m in models] + [hr]
    grid = torch.stack([c.float().clamp(0, 1) for c in columns], 1).flatten(0, 1)
    steps = "_".join(f"{m.kind[0]}{m.info['step']}" for m in models)
    path = run_dir / "samples" / f"preview_{steps}.png"
    path.parent.mkdir(exist_ok=True)
    save_image(grid, path, nrow=len(columns), padding=2, pad_value=1)
    return path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip())
    ap.add_argument("run", help="a train.py run folder")
    ap.add_argument("--n", type=int, default=4, help="crops (rows) (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the crops' degradation and of ε (default: 0)")
    args = ap.parse_args(argv)
    try:
        print(preview(args.run, args.n, args.seed))
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
