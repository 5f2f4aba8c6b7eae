"""
tools/frontier.py: the perception–distortion frontier of evaluated students: LPIPS-alex (lower = closer to the
real image's look) against PSNR (higher = closer pixel by pixel), one point per method of a reference report
(bicubic, the teacher, the peers, ...) and one per student trial, from the metrics.csv files evaluate.py writes.

    python tools/frontier.py --reference results/weights/light --trials runs/ablation/*/report --out docs/frontier.png

A trial's label is its run folder's name (the folder above report/, or above report-STEP: NAME@STEP); trials
sharing a name up to "-s<seed>" are averaged over seeds. Means are over the images of each file.
"""

import argparse
import re
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import evaluate  # noqa: E402


def means(report, method):
    """(PSNR, LPIPS-alex) of a method, means over the report's images."""
    psnr, lpips = (evaluate.mean(evaluate.read_metrics(report), method, k) for k in ("psnr", "lpips"))
    if psnr is None or lpips is None:
        raise SystemExit(f"error: {report} has no {'psnr' if psnr is None else 'lpips'} for {method} (lpips needs "
                         "the metrics' weights: python metrics.py --fetch-weights, then evaluate.py again)")
    return psnr, lpips


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip())
    ap.add_argument("--reference", required=True, help="a report whose every method becomes a reference point")
    ap.add_argument("--trials", nargs="+", default=[], help="reports of students: their `student` row is a trial")
    ap.add_argument("--out", default="results/frontier.png")
    args = ap.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(r["method"] for r in evaluate.read_metrics(args.reference)))
    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    for m in methods:
        if m == "bicubic+noise":
            continue
        x, y = means(args.reference, m)
        ax.scatter(x, y, marker="s", s=60, color="black" if m in ("bicubic", "teacher", "teacher_1step", "student")
                   else "tab:red")
        ax.annotate(m if m != "student" else "shipped student", (x, y), textcoords="offset points", xytext=(5, 4))
    groups = defaultdict(list)
    for t in args.trials:  # runs/NAME-s0/report -> NAME; runs/NAME/report-4000 -> NAME@4000
        p = Path(t)
        name = p.parent.name if p.name == "report" else f"{p.parent.name}@{p.name.removeprefix('report-')}"
        groups[re.sub(r"-s\d+$", "", name)].append(t)
    for k, (name, reports) in enumerate(groups.items()):
        pts = [means(r, "student") for r in reports]
        x, y = sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts)
        ax.scatter(x, y, s=30, color="tab:blue")
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, 8 - 12 * (k % 3)), fontsize=8,
                    color="tab:blue")  # (labels staggered: neighbouring trials often overlap)
    ax.set_xlabel("PSNR (dB, Y channel) → better fidelity")
    ax.set_ylabel("LPIPS-alex ← better perception")
    ax.invert_yaxis()
    ax.grid(alpha=0.3)
    ax.set_title("Perception–distortion: black = bicubic and the shipped pair, red = peers, blue = student trials",
                 fontsize=9)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
