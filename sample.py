"""
sample.py: upscale images ×4 with the one-step VPD-SR student, or with its multi-step teacher.

    python sample.py photo.jpg                                  # the shipped student -> results/photo_x4.png
    python sample.py photos/ more.png -o results/mine --ckpt runs/vpdsr/student.pt   # a student of your own
    python sample.py photo.jpg --ckpt weights/teacher.pt        # the shipped teacher (all T steps), to compare
    python sample.py huge.png --tile 256 --tile-overlap 32 --color-fix wavelet
    python sample.py photos/ --benchmark                        # latency, images/s and peak memory

Every output is an 8-bit PNG of exactly 4× the input's width and height: the input is padded to what the
network needs and the output cropped back, never resized. The noise ε is drawn from --seed, so a result
is reproducible. On large images the network runs on overlapping tiles whose predictions are blended with
Gaussian weights at every step, around one x_t and one noise for the whole image: tiles leave no seams.
"""

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from checkpoint import load_checkpoint, shipped
from data import find_images, load_image, save_png
from runtime import PRECISIONS, available_memory, peak_memory, resolve_device, resolve_precision, timed

# ---------------------------------------------------------------------------------------------------
# Colour correction: diffusion outputs can drift in colour; these pull them back towards the input
# ---------------------------------------------------------------------------------------------------


def adain_color_fix(sr, ref):
    """Match each channel's mean and standard deviation to the reference's (adaptive instance norm)."""
    mu_s, std_s = sr.mean((-2, -1), keepdim=True), sr.std((-2, -1), keepdim=True) + 1e-6
    mu_r, std_r = ref.mean((-2, -1), keepdim=True), ref.std((-2, -1), keepdim=True)
    return (sr - mu_s) / std_s * std_r + mu_r


def wavelet_split(img, levels=5):
    """(high, low) with img = high + low: low is img blurred by an à-trous wavelet pyramid (a 3×3
    binomial kernel dilated by 1, 2, 4, ...), high is everything that the blurs removed."""
    k = torch.tensor([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=img.dtype, device=img.device) / 16
    k = k.expand(img.shape[1], 1, 3, 3)
    high, low = torch.zeros_like(img), img
    for i in range(levels):
        d = 2**i
        blurred = F.conv2d(F.pad(low, (d, d, d, d), mode="replicate"), k, groups=img.shape[1], dilation=d)
        high, low = high + (low - blurred), blurred
    return high, low


def wavelet_color_fix(sr, ref):
    """Low frequencies (colour, shading) from the reference, high frequencies (detail) from the output."""
    return wavelet_split(sr)[0] + wavelet_split(ref)[1]


COLOR_FIXES = {"none": None, "wavelet": wavelet_color_fix, "adain": adain_color_fix}

# ---------------------------------------------------------------------------------------------------
# Upscaling one image: pad, tile, blend, crop
# ---------------------------------------------------------------------------------------------------


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


class TiledNetwork:
    """Stands in for an SRModel inside its samplers: the network runs on overlapping tiles of the latent
    (tiles of at most tile × tile LR pixels; the latent has the LR image's size) and the tiles' x̂₀ are
    blended with Gaussian weights. Blending at every network call, around one x_t and one noise for the
    whole image, keeps seams out of every sampler: one step, deterministic and ancestral alike."""

    def __init__(self, model, tile, overlap):
        self.model, self.tile, self.step = model, tile, max(tile - overlap, model.multiple)

    def __getattr__(self, name):  # the schedule, config, prior_sample, ...: the model's own
        return getattr(self.model, name)

    def __call__(self, x_t, lr, t, y0=None):
        H, W = x_t.shape[-2:]
        th, tw = min(self.tile, H), min(self.tile, W)
        out = torch.zeros(x_t.shape, device=x_t.device)
        weight = torch.zeros((1, 1, H, W), device=x_t.device)
        wgt = gaussian_weights(th, tw, x_t.device)
        for y in tile_starts(H, self.tile, self.step):
            for x in tile_starts(W, self.tile, self.step):
                win = (..., slice(y, y + th), slice(x, x + tw))
                x0_hat = self.model(x_t[win], lr[win], t, None if y0 is None else y0[win])
                out[..., y : y + th, x : x + tw] += x0_hat.float() * wgt
                weight[..., y : y + th, x : x + tw] += wgt
        return out / weight


@torch.no_grad()
def upscale_image(model, rgb, steps=None, sampler="deterministic", seed=0, tile=0, overlap=32,
                  dtype=torch.float32, color_fix="none"):
    """rgb (3,h,w) in [0,1] -> (3,s·h,s·w) in [0,1]. tile > 0 runs the network on overlapping tiles of at
    most tile × tile LR pixels (see TiledNetwork); the codec always sees the whole image."""
    device, s, m = model.eta.device, model.cfg.scale, model.multiple
    h, w = rgb.shape[-2:]
    lr = pad_to_multiple(rgb[None].to(device), m)
    g = torch.Generator().manual_seed(seed)
    # ε for the whole image, at the latent size (= the LR size: the codec downsamples by s), on the CPU so
    # that a seed gives the same ε on every device.
    eps = torch.randn((1, model.codec.channels, *lr.shape[-2:]), generator=g).to(device)
    net = TiledNetwork(model, max(m, tile // m * m), overlap) if tile and tile < max(lr.shape[-2:]) else None
    with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
        sr = model.upscale(lr, eps, steps, sampler, generator=g, net=net)
    sr = sr.float()[..., : h * s, : w * s]
    if COLOR_FIXES[color_fix] is not None:
        ref = F.interpolate(rgb[None].to(device), scale_factor=s, mode="bicubic", align_corners=False).clamp(0, 1)
        sr = COLOR_FIXES[color_fix](sr, ref)
    return sr[0].clamp(0, 1).cpu()


# ---------------------------------------------------------------------------------------------------
# Memory and time: choose tiling when a whole image would not fit; measure
# ---------------------------------------------------------------------------------------------------


@torch.no_grad()
def activation_bytes_per_pixel(model, dtype):
    """An upper bound on the activation memory of one network evaluation per LR pixel: the sum of the
    outputs of every layer on a small probe input (in reality most of them are freed on the way)."""
    total = [0]
    hooks = [mod.register_forward_hook(lambda _m, _i, o: total.__setitem__(0, total[0] + o.numel() * o.element_size()))
             for mod in model.net.modules() if not list(mod.children())]
    side = 4 * model.multiple
    lr = torch.rand((1, 3, side, side), device=model.eta.device)
    try:
        with torch.autocast(lr.device.type, dtype=dtype, enabled=dtype != torch.float32):
            model(model.encode_lr(lr), lr, model.cfg.T)
    finally:
        for hk in hooks:
            hk.remove()
    return total[0] / side**2


def whole_image_bytes_per_pixel(model):
    """Memory that tiling does not reduce, per LR pixel: the latent-sized tensors a sampler keeps for the
    whole image (x_t, y₀, ε, x̂₀ and the blending buffers) and the s×-larger output image, in fp32."""
    return 4 * (8 * model.codec.channels + 4 * 3 * model.cfg.scale**2)


def auto_tile(model, rgb_shape, per_px, tile, budget_fraction=0.5):
    """The tile size to use: the requested one (0 = whole image) when it fits in `budget_fraction` of the
    free memory (at per_px bytes of network activations per LR pixel, plus the whole-image tensors), else
    the largest that does (a multiple of the network's size multiple, at least 4 of them)."""
    budget = budget_fraction * available_memory(model.eta.device)
    h, w = rgb_shape[-2:]
    budget -= whole_image_bytes_per_pixel(model) * h * w
    need = per_px * (min(tile, h) * min(tile, w) if tile else h * w)
    if need <= budget:
        return tile
    side = int((max(budget, 0) / per_px) ** 0.5) // model.multiple * model.multiple
    return max(side, 4 * model.multiple)


# ---------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------


def upscale_fitting(model, rgb, per_px, steps, dtype, args, name="", quiet=False):
    """upscale_image with the tiles of --tile, smaller ones when those would not fit in memory, and,
    should the GPU still run out of memory, half-size tiles until they fit."""
    from tqdm import tqdm

    say = (lambda msg: None) if quiet else tqdm.write
    tile = auto_tile(model, rgb.shape, per_px, args.tile)
    if tile != args.tile:
        say(f"{name}: {rgb.shape[-1]}x{rgb.shape[-2]} at once would not fit in memory: tiles of {tile}x{tile}")
    while True:
        try:
            return upscale_image(model, rgb, steps, args.sampler, args.seed, tile, args.tile_overlap, dtype,
                                 args.color_fix)
        except torch.cuda.OutOfMemoryError:  # the estimate was optimistic
            tile = (tile or max(rgb.shape[-2:])) // 2
            if tile < 4 * model.multiple:
                raise
            torch.cuda.empty_cache()
            say(f"{name}: out of GPU memory, retrying with tiles of {tile}x{tile}")


def plan_outputs(inputs, outdir, scale):
    """[(source, output path or None, error or None)]: files as given, folders searched recursively (their
    sub-folders mirrored under outdir). Never maps an output onto an input, or two inputs onto one output."""
    pairs = []
    for item in map(Path, inputs):
        if item.is_dir():
            pairs += [(p, outdir / p.relative_to(item).parent / f"{p.stem}_x{scale}.png") for p in find_images(item)]
        else:
            pairs.append((item, outdir / f"{item.stem}_x{scale}.png"))
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
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip(),
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("inputs", nargs="+", metavar="INPUT", help="image files and/or folders (searched recursively)")
    ap.add_argument("-o", "--out", default="results", help="output folder")
    ap.add_argument("--ckpt", help="checkpoint (student.pt or teacher.pt); default: the shipped student, "
                    "weights/student.pt")
    ap.add_argument("--steps", type=int, help="network evaluations: 1 = one step (default for a student); "
                    "N > 1 runs a teacher's sampler (default for a teacher: all T steps)")
    ap.add_argument("--sampler", choices=["deterministic", "ancestral"], default="deterministic",
                    help="the teacher's sampler (SinSR's ODE, or ResShift's stochastic one)")
    ap.add_argument("--tile", type=int, default=256, help="LR tile size in pixels (smaller ones are chosen when a "
                    "tile would not fit in memory); 0 = the whole image at once, if it fits")
    ap.add_argument("--tile-overlap", type=int, default=32, help="overlap between tiles, in LR pixels")
    ap.add_argument("--color-fix", choices=list(COLOR_FIXES), default="none",
                    help="wavelet: low frequencies from the bicubic upscale; adain: channel statistics of the input")
    ap.add_argument("--precision", choices=PRECISIONS, default="auto",
                    help="auto = bf16 on a GPU that supports it, fp16 on one that does not, fp32 on the CPU")
    ap.add_argument("--vae", help="a local copy of the checkpoint's autoencoder, when its hub id cannot be reached")
    ap.add_argument("--compile", action="store_true", help="torch.compile the network (pays off for many images)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the noise ε")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    ap.add_argument("--benchmark", action="store_true",
                    help="after a warm-up, print per-image latency, images/s and peak memory")
    args = ap.parse_args(argv)

    device = resolve_device(args.device)
    dtype = resolve_precision(args.precision, device)
    try:
        ckpt = args.ckpt or shipped("student")
        model = load_checkpoint(ckpt, device=device, vae=args.vae)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        raise SystemExit(f"error: {e}") from None
    steps = args.steps if args.steps is not None else (1 if model.kind == "student" else model.cfg.T)
    if not 1 <= steps <= model.cfg.T:
        raise SystemExit(f"error: --steps {steps}: must be between 1 and the teacher's T = {model.cfg.T}")
    if steps > 1 and model.kind == "student":
        raise SystemExit(f"error: --steps {steps} runs a teacher's sampler, but {ckpt} is a student; "
                         "pass a teacher checkpoint (runs/<name>/teacher.pt) or use --steps 1")
    per_px = activation_bytes_per_pixel(model, dtype)  # for choosing tiles that fit (before compiling)
    if args.compile:
        model.net = torch.compile(model.net)
    what = "one step" if steps == 1 else f"{steps} steps, {args.sampler} sampler"
    print(f"{ckpt}: {model.kind}, {what}, {device}, {str(dtype).removeprefix('torch.')}")

    from tqdm import tqdm

    plan = plan_outputs(args.inputs, Path(args.out), model.cfg.scale)
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
            upscale_fitting(model, rgb, per_px, steps, dtype, args, quiet=True)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            warm = True
        sr, ms = timed(lambda: upscale_fitting(model, rgb, per_px, steps, dtype, args, name=src), device)
        times.append((src, rgb.shape, ms))
        if alpha is not None:  # transparency is not super-resolved, just upscaled
            alpha = F.interpolate(alpha[None], scale_factor=model.cfg.scale, mode="bicubic", align_corners=False)[0]
            sr = torch.cat([sr, alpha.clamp(0, 1)])
        save_png(sr, out)
    if args.benchmark:
        print_benchmark(times, device, model.cfg.scale)
    print(f"wrote {len(times)} image(s) to {args.out}/")
    for e in failed:
        print(f"error: {e}", file=sys.stderr)
    return 1 if failed else 0


def print_benchmark(times, device, scale):
    print(f"\n{'image':<32}{'input':>12}{'output':>12}{'ms':>10}")
    for src, shape, ms in times:
        h, w = shape[-2:]
        print(f"{Path(src).name[:31]:<32}{f'{w}x{h}':>12}{f'{scale * w}x{scale * h}':>12}{ms:>10.1f}")
    if not times:
        return
    total = sum(ms for *_, ms in times) / 1000
    print(f"mean {1000 * total / len(times):.1f} ms/image, {len(times) / total:.2f} images/s, "
          f"peak memory {peak_memory(device)}")


if __name__ == "__main__":
    sys.exit(main())
