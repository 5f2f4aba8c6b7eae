"""
tools/plot_losses.py: the loss curves of a train.py run, from its log.jsonl: RUN/loss_<stage>.png, one
line per logged term, on a log scale.

    python tools/plot_losses.py runs/vpdsr
"""

import argparse
import json
import sys
from pathlib import Path


def plot_losses(run_dir):
    """Write loss_<stage>.png for every stage in run_dir/log.jsonl; returns the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    recs = [json.loads(line) for line in open(run_dir / "log.jsonl")]
    written = []
    for stage in dict.fromkeys(r["stage"] for r in recs):
        mine = [r for r in recs if r["stage"] == stage]
        keys = dict.fromkeys(k for r in mine for k in r if k not in ("stage", "step", "learning_rate", "img_per_s"))
        fig, ax = plt.subplots(figsize=(7, 4))
        for k in keys:
            ax.plot([r["step"] for r in mine if k in r], [abs(r[k]) for r in mine if k in r], label=k)
        ax.set(xlabel="step", ylabel="loss (absolute value)", yscale="log", title=f"{stage} stage: {run_dir}")
        ax.legend()
        fig.tight_layout()
        fig.savefig(run_dir / f"loss_{stage}.png", dpi=100)
        plt.close(fig)
        written.append(run_dir / f"loss_{stage}.png")
    return written


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip())
    ap.add_argument("run", help="a train.py run folder (holding log.jsonl)")
    args = ap.parse_args(argv)
    if not (Path(args.run) / "log.jsonl").is_file():
        raise SystemExit(f"error: {args.run}/log.jsonl does not exist (not a train.py run folder?)")
    for p in plot_losses(args.run):
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
