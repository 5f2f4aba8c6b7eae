"""
sample.py: upscale images ×4 with the one-step VPD-SR student, or with its multi-step teacher.

    python sample.py photo.jpg                                  # the shipped student -> results/photo_x4.png
    python sample.py photos/ more.png -o results/mine --ckpt runs/vpdsr/student.pt   # a student of your own
    python sample.py photo.jpg --ckpt weights/teacher.pt        # the shipped teacher (all T steps), to compare
    python sample.py huge.png --tile 128 --tile-overlap 32      # smaller tiles: less memory
    python sample.py photos/ --benchmark                        # latency, images/s and peak memory

Every output is an 8-bit PNG of exactly 4× the input's width and height: the input is padded to what the
network needs and the output cropped back, never resized. The noise ε is drawn from --seed, so a result
is reproducible. On large images the network runs on overlapping tiles whose outputs are blended with
Gaussian weights at every step, around one x_t and one noise for the whole image: tiles leave no seams.
"""

import argparse
import sys
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from checkpoint import load_checkpoint, shipped
from data import find_images, load_image, save_png
from degrade import SCALE
from model import LATENT_CHANNELS
from runtime import PRECISIONS, peak_memory, resolve_device, resolve_precision, timed

# --- Upscaling one image: pad, tile, blend, crop


def pad_to_multiple(img, m):
    """Pad (bottom, right) to a multiple of m: reflect where the image is large enough, else replicate."""
    h, w = img.shape[-2:]
    ph, pw = -h % m, -w % m
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(img, (0, pw, 0, ph), mode=mode) if ph or pw else img


def tile_starts(size, tile, step):
    """Start offsets of overlapping tiles covering [0, size); the last tile ends at the border."""
    if size <= tile:
        return [0]
    return list(range(0, size - tile, step)) + [size - tile]


def gaussian_weights(h, w, device):
    """Blending weights of one tile: a 2-D Gaussian, highest at the centre (σ = a quarter side), so
    that each pixel comes mostly from the tile in which it is furthest from an edge."""
    y = torch.arange(h, device=device, dtype=torch.float32) - (h - 1) / 2
    x = torch.arange(w, device=device, dtype=torch.float32) - (w - 1) / 2
    return torch.exp(-(y[:, None] ** 2) / (2 * (h / 4) ** 2) - x[None] ** 2 / (2 * (w / 4) ** 2))


class Tiled(nn.Module):
    """The UNet run on overlapping tiles of its input (tiles of at most tile × tile latent pixels; the
    latent has the LR image's size), their outputs blended with Gaussian weights. Everything the UNet
    reads (x_t and the condition) is concatenated at the latent's size, and x̂₀ is its output F times
    per-timestep scalars plus terms outside the network (SRModel.forward), so blending F blends x̂₀.
    Blending at every network call, around one x_t and one noise for the whole image, keeps seams out of
    every sampler: one step, deterministic and ancestral alike."""

    def __init__(self, net, tile, step):
        super().__init__()
        self.inner, self.tile, self.step = net, tile, step

    def forward(self, x, t, return_dict=False):
        H, W = x.shape[-2:]
        th, tw = min(self.tile, H), min(self.tile, W)
        out, weight = None, torch.zeros((1, 1, H, W), device=x.device)
        wgt = gaussian_weights(th, tw, x.device)
        for y in tile_starts(H, self.tile, self.step):
            for x_ in tile_starts(W, self.tile, self.step):
                f = self.inner(x[..., y : y + th, x_ : x_ + tw], t, return_dict=False)[0].float()
                out = torch.zeros((*f.shape[:2], H, W), device=x.device) if out is None else out
                out[..., y : y + th, x_ : x_ + tw] += f * wgt
                weight[..., y : y + th, x_ : x_ + tw] += wgt
        return (out / weight,)


@contextmanager
def tiles(model, tile, overlap):
    """Within the block, model.net runs in tiles (Tiled) when the image is larger than one tile."""
    raw = model.net
    if tile:
        model.net = Tiled(raw, tile, max(tile - overlap, model.multiple))
    try:
        yield
    finally:
        model.net = raw


@torch.no_grad()
def upscale_image(model, rgb, steps=None, sampler="deterministic", seed=0, tile=0, overlap=32,
                  dtype=torch.float32):
    """rgb (3,h,w) in [0,1] -> (3,4h,4w) in [0,1]. tile > 0 runs the network on overlapping tiles of at
    most tile × tile LR pixels (see Tiled); encoding and decoding always see the whole image."""
    device, m = model.eta.device, model.multiple
    h, w = rgb.shape[-2:]
    lr = pad_to_multiple(rgb[None].to(device), m)
    g = torch.Generator().manual_seed(seed)
    # ε for the whole image, at the latent size (= the LR size: the latent downsamples by 4), on the CPU so
    # that a seed gives the same ε on every device.
    eps = torch.randn((1, LATENT_CHANNELS, *lr.shape[-2:]), generator=g).to(device)
    tile = max(m, tile // m * m) if tile and tile < max(lr.shape[-2:]) else 0
    with tiles(model, tile, overlap), torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
        sr = model.upscale(lr, eps, steps, sampler, generator=g)
    return sr.float()[0, :, : h * SCALE, : w * SCALE].clamp(0, 1).cpu()


def upscale_fitting(model, rgb, steps, dtype, args):
    """upscale_image with the tiles of --tile; should the GPU run out of memory, half-size tiles until
    they fit."""
    tile = args.tile
    while True:
        try:
            return upscale_image(model, rgb, steps, args.sampler, args.seed, tile, args.tile_overlap, dtype)
        except torch.cuda.OutOfMemoryError:
            tile = (tile or max(rgb.shape[-2:])) // 2
            if tile < 4 * model.multiple:
                raise
            torch.cuda.empty_cache()
            print(f"out of GPU memory: retrying with tiles of {tile}x{tile}")


# --- Command line


def plan_outputs(inputs, outdir):
    """[(source, output path or None, error or None)]: files as given, folders searched recursively (their
    sub-folders mirrored under outdir). Never maps an output onto an input, or two inputs onto one output."""
    pairs = []
    for item in map(Path, inputs):
        if item.is_dir():
            pairs += [(p, outdir / p.relative_to(item).parent / f"{p.stem}_x{SCALE}.png") for p in find_images(item)]
        else:
            pairs.append((item, outdir / f"{item.stem}_x{SCALE}.png"))
    sources = {p.resolve() for p, _ in pairs}
    seen, plan = set(), []
    for src, out in pairs:
        if not src.exists():
            plan.append((src, None, f"{src}: no such file or folder"))
        elif out.resolve() in sources:
            plan.append((src, None, f"{src}: its output {out} would overwrite an input file; choose another -o"))
        elif out.resolve() in seen:
            plan.append((src, None, f"{src}: another input already writes {out}; rename one of them"))
        else:
            seen.add(out.resolve())
            plan.append((src, out, None))
    return plan


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip())
    ap.add_argument("inputs", nargs="+", metavar="INPUT", help="image files and/or folders (searched recursively)")
    ap.add_argument("-o", "--out", default="results", help="output folder (default: %(default)s)")
    ap.add_argument("--ckpt", help="checkpoint (student.pt or teacher.pt); default: the shipped student, "
                    "weights/student.pt")
    ap.add_argument("--steps", type=int, help="network evaluations: 1 = one step (default for a student); "
                    "N > 1 runs a teacher's sampler (default for a teacher: all T steps)")
    ap.add_argument("--sampler", choices=["deterministic", "ancestral"], default="deterministic",
                    help="the teacher's sampler (SinSR's ODE, or ResShift's stochastic one) (default: %(default)s)")
    ap.add_argument("--tile", type=int, default=256, help="LR tile size in pixels (halved on a GPU that runs out "
                    "of memory); 0 = the whole image at once (default: %(default)s)")
    ap.add_argument("--tile-overlap", type=int, default=32, help="overlap between tiles, in LR pixels "
                    "(default: %(default)s)")
    ap.add_argument("--precision", choices=PRECISIONS, default="auto",
                    help="auto = bf16 on a GPU that supports it, fp16 on one that does not, fp32 on the CPU "
                    "(default: %(default)s)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the network (pays off for many images)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the noise ε (default: %(default)s)")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    ap.add_argument("--benchmark", action="store_true",
                    help="after a warm-up, print per-image latency, images/s and peak memory")
    args = ap.parse_args(argv)

    device = resolve_device(args.device)
    dtype = resolve_precision(args.precision, device)
    try:
        ckpt = args.ckpt or shipped("student")
        model = load_checkpoint(ckpt, device=device)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        raise SystemExit(f"error: {e}") from None
    steps = args.steps if args.steps is not None else (1 if model.kind == "student" else model.cfg.T)
    if not 1 <= steps <= model.cfg.T:
        raise SystemExit(f"error: --steps {steps}: must be between 1 and the teacher's T = {model.cfg.T}")
    if steps > 1 and model.kind == "student":
        raise SystemExit(f"error: --steps {steps} runs a teacher's sampler, but {ckpt} is a student; "
                         "pass a teacher checkpoint (runs/<name>/teacher.pt) or use --steps 1")
    if args.compile:
        model.net = torch.compile(model.net)
    what = "one step" if steps == 1 else f"{steps} steps, {args.sampler} sampler"
    print(f"{ckpt}: {model.kind}, {what}, {device}, {str(dtype).removeprefix('torch.')}")

    from tqdm import tqdm

    plan = plan_outputs(args.inputs, Path(args.out))
    failed, times = [e for _, _, e in plan if e], []
    todo = [(src, out) for src, out, e in plan if not e]
    warm = not args.benchmark  # --benchmark: the first readable image runs once untimed (warm-up, compilation)
    for src, out in tqdm(todo, desc="upscaling", unit="img", disable=len(todo) < 2):
        try:
            rgb, alpha = load_image(src)
        except ValueError as e:
            failed.append(str(e))
            continue
        if not warm:
            upscale_fitting(model, rgb, steps, dtype, args)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            warm = True
        sr, ms = timed(lambda: upscale_fitting(model, rgb, steps, dtype, args), device)
        times.append((src, rgb.shape, ms))
        if alpha is not None:  # transparency is not super-resolved, just upscaled
            alpha = F.interpolate(alpha[None], scale_factor=SCALE, mode="bicubic", align_corners=False)[0]
            sr = torch.cat([sr, alpha.clamp(0, 1)])
        save_png(sr, out)
    if args.benchmark:
        print(f"\n{'image':<32}{'input':>12}{'output':>12}{'ms':>10}")
        for src, (_, h, w), ms in times:
            print(f"{Path(src).name[:31]:<32}{f'{w}x{h}':>12}{f'{SCALE * w}x{SCALE * h}':>12}{ms:>10.1f}")
        if times:
            total = sum(ms for *_, ms in times) / 1000
            print(f"mean {1000 * total / len(times):.1f} ms/image, {len(times) / total:.2f} images/s, "
                  f"peak memory {peak_memory(device)}")
    print(f"wrote {len(times)} image(s) to {args.out}/")
    for e in failed:
        print(f"error: {e}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
