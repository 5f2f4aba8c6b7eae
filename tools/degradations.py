"""
tools/degradations.py: see what the networks train on. Writes LR versions of photos, made by degrade.py,
and a preview grid of each: the HR photo, then its LR versions enlarged (nearest neighbour).

    python tools/degradations.py photo.png -o results/degrade             # 8 LR versions of each photo
    python tools/degradations.py --demo -o results/degrade --n 4 --degradation light   # the held-out demo photos
"""

import argparse
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data import demo_images, load_image, save_png  # noqa: E402
from degrade import DEGRADATIONS, SCALE, degrade  # noqa: E402


def main(argv=None):
    from torchvision.utils import make_grid

    ap = argparse.ArgumentParser(description="Write LR versions of photos (what the networks train on) and a "
                                 "preview grid of each: the HR photo, then its LR versions enlarged.")
    ap.add_argument("images", nargs="*", metavar="IMG", help="image files to degrade")
    ap.add_argument("--demo", action="store_true", help="also degrade the held-out scikit-image demo photos")
    ap.add_argument("-o", "--out", default="results/degrade", help="output folder (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0, help="random seed, the same for each image (default: 0)")
    ap.add_argument("--n", type=int, default=8, help="LR versions per image (default: %(default)s)")
    ap.add_argument("--degradation", choices=list(DEGRADATIONS), default="resshift", help="(default: %(default)s)")
    args = ap.parse_args(argv)
    if not args.images and not args.demo:
        ap.error("give image files, or --demo")
    inputs = [(p, p) for p in args.images]
    inputs += [(name, img.float() / 255) for name, img in demo_images("val")] if args.demo else []
    out, failed = Path(args.out), []
    for label, src in inputs:
        stem, g = Path(label).stem, torch.Generator().manual_seed(args.seed)
        try:
            hr = load_image(src)[0] if isinstance(src, str) else src
            # One degrade() call per version: each version shows its own batch-level draws (resize, noise type).
            pairs = [degrade(hr[None], DEGRADATIONS[args.degradation], g) for _ in range(args.n)]
        except ValueError as e:  # an unreadable file, or an image smaller than SCALE
            print(f"error: {e}" if label in str(e) else f"error: {label}: {e}", file=sys.stderr)
            failed.append(label)
            continue
        lrs = [lr[0] for _, lr in pairs]
        for k, lr in enumerate(lrs):
            save_png(lr, out / f"{stem}_lr{k}.png")
        tiles = [pairs[0][0][0]] + [lr.repeat_interleave(SCALE, -2).repeat_interleave(SCALE, -1) for lr in lrs]
        grid = make_grid(tiles, nrow=math.ceil(len(tiles) ** 0.5), padding=4, pad_value=1.0)
        save_png(grid, out / f"{stem}_preview.png")
        print(f"{stem}: {hr.shape[-1]}x{hr.shape[-2]} -> {args.n} x {lrs[0].shape[-1]}x{lrs[0].shape[-2]}, "
              f"preview {out / f'{stem}_preview.png'}")
    if failed:
        print(f"{len(failed)} of {len(inputs)} images failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
