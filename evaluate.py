"""
evaluate.py: bicubic vs the multi-step teacher vs the one-step student, with the field's metrics and speed.

    python evaluate.py --data photos+demo                                        # the shipped pair (weights/)
    python evaluate.py --ckpt runs/vpdsr/student.pt --data demo                  # the held-out demo photos
    python evaluate.py --ckpt runs/vpdsr/student.pt --data RealSR/HR --lr-dir RealSR/LR
    python evaluate.py --teacher runs/vpdsr/teacher.pt --data photos+demo        # a teacher alone, before distillation
    python evaluate.py --data photos+demo --compare realesrgan=results/peers/realesrgan
    python tools/webpage.py report                                               # then: the report as a web page

HR images are cropped (top-left) to a multiple of 4. Without --lr-dir, degrade.py makes each LR input with the
degradation the checkpoint was trained on (the student's, else the teacher's; --degradation picks another) and
a seed fixed per image name: every method sees the same input, and a rerun gives the same numbers. Every output
is saved as an 8-bit PNG, and measured from the saved file.

Methods (rows): bicubic; bicubic+noise (bicubic plus white noise with the student's high-frequency energy: the
baseline that cheap "detail" must beat); teacher (its deterministic sampler, all T steps of its checkpoint unless
--teacher-steps says otherwise) and teacher_1step (its single network call at t = T), given a teacher; student
(one step), given a student; --compare NAME=DIR: another method's outputs (e.g. tools/peers.py's). Metrics
(columns; metrics.py defines each): psnr, ssim, lf_psnr, hf_ratio, hf_corr, psnr_vs_teacher, lpips, lpips_vgg,
dists, niqe (python metrics.py --fetch-weights, once), latency_ms.

Written to --out (default report/): hr/, lr/ and a folder per method (the images), metrics.csv (a row per
image and method), summary.md (means, metric settings, set-up), compare.png (a crop of LR | each method | HR).
"""

import argparse
import csv
import importlib.util
import math
import platform
import sys
import zlib
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from checkpoint import load_checkpoint, shipped
from data import eval_images, find_images, load_image, save_png, to_uint8
from degrade import DEGRADATIONS, SCALE, degrade
from metrics import (PERCEPTUAL, band_energy, band_is_empty, hf_band, hf_corr, hf_ratio, iqa_metrics, lf_psnr, psnr,
                     rgb_to_y, ssim)
from runtime import PRECISIONS, peak_memory, resolve_device, resolve_precision, timed
from sample import upscale_image

NOISY = "bicubic+noise"  # the baseline's label, and its folder under --out
METRIC_COLUMNS = ["psnr", "ssim", "lf_psnr", "hf_ratio", "hf_corr", "psnr_vs_teacher", *PERCEPTUAL, "latency_ms"]


def image_seed(stem, seed):
    """A seed fixed by the image's name (not its position), so adding images changes no other image's LR."""
    return zlib.crc32(stem.encode()) ^ seed


def load_pairs(data, lr_dir, seed, degradation=None):
    """[(stem, hr, lr)]: HR cropped top-left to a multiple of 4; LR from the folder lr_dir (paired by file
    name), else made by degrade.py with `degradation` (a key of DEGRADATIONS) and a per-image seed."""
    def unique(stems, kind, where):
        if len(set(stems)) != len(stems):
            twice = ", ".join(sorted({s for s in stems if stems.count(s) > 1}))
            raise SystemExit(f"error: {kind} images with the same name {where}: {twice}")
    try:
        hrs = eval_images(data)  # [(name, image or file)]
    except FileNotFoundError as e:
        raise SystemExit(f"error: {e}") from None
    if not hrs:
        raise SystemExit(f"error: no images found in {data}")
    unique(stems := [s for s, _ in hrs], "HR", "in different folders")
    if lr_dir:
        if not Path(lr_dir).is_dir():
            raise SystemExit(f"error: --lr-dir {lr_dir}: no such folder")
        found = find_images(lr_dir)
        unique([p.stem for p in found], "LR", f"in {lr_dir}")
        lr_files = {p.stem: p for p in found}
        missing, extra = sorted(set(stems) - set(lr_files)), sorted(set(lr_files) - set(stems))
        if missing or extra:
            raise SystemExit("error: HR and LR images must pair up by file name.\n"
                             + (f"  HR without LR in {lr_dir}: {', '.join(missing)}\n" if missing else "")
                             + (f"  LR without HR in {data}: {', '.join(extra)}\n" if extra else ""))
    elif degradation not in DEGRADATIONS:
        raise SystemExit(f"error: LR inputs to make, but no degradation ({', '.join(DEGRADATIONS)}) given")
    pairs = []
    for stem, src in hrs:
        hr = load_image(src)[0] if isinstance(src, Path) else src
        hr = hr[:, : hr.shape[1] // SCALE * SCALE, : hr.shape[2] // SCALE * SCALE]
        if lr_dir:
            lr = load_image(lr_files[stem])[0]
            if tuple(lr.shape[1:]) != (hr.shape[1] // SCALE, hr.shape[2] // SCALE):
                raise SystemExit(f"error: {lr_files[stem]} is {lr.shape[2]}x{lr.shape[1]}, but its HR image {src} "
                                 f"(cropped to {hr.shape[2]}x{hr.shape[1]}) needs a {SCALE}x smaller LR image")
        else:
            g = torch.Generator().manual_seed(image_seed(stem, seed))
            lr = degrade(hr[None], DEGRADATIONS[degradation], g)[1][0]
        pairs.append((stem, hr, lr))
    return pairs


def bicubic(lr):
    return F.interpolate(lr[None], scale_factor=SCALE, mode="bicubic", align_corners=False)[0].clamp(0, 1)


# The bicubic+noise baseline: as much high-band energy as the student's output, none of it real


def noise_scale(base, noise, hr, target, cutoff=0.25, rtol=1e-4):
    """The scale a ≥ 0 at which hf_ratio(clamp(base + a·noise, 0, 1), hr) = target. Without the clamp it is
    exact: the band is linear (B + a·N), so hf_ratio(a)·E_hr = |B|² + 2a·Re⟨B,N⟩ + a²·|N|², a quadratic whose
    positive root is a = (−p + √(p² − |N|²·c)) / |N|², p = Re⟨B,N⟩, c = |B|² − target·E_hr < 0. (Energy adds
    only in expectation: "a² = (target·E_hr − |B|²) / |N|²" would miss the random cross term p.) Where
    base + a·noise leaves [0,1], the clamp removes part of the noise near black and white, and a is found
    again on the clamped image by bisection, to a relative error of `rtol`. A target at or below the base's own
    hf_ratio gives 0; one the clamped image cannot reach (clamping caps the energy), the largest scale tried."""
    e_hr = band_energy(hf_band(hr, cutoff))
    if not math.isfinite(target) or band_is_empty(e_hr, hr.shape):
        return 0.0
    bb, nn_ = hf_band(base, cutoff), hf_band(noise, cutoff)
    p, e_n, c = (bb * nn_.conj()).real.sum().item(), band_energy(nn_), band_energy(bb) - target * e_hr
    if c >= 0 or e_n == 0:
        return 0.0
    a = (-p + math.sqrt(p * p - e_n * c)) / e_n
    base, noise = base.double(), noise.double()
    if 0 <= (base + a * noise).min() and (base + a * noise).max() <= 1:
        return a  # nothing clipped: the quadratic's root is exact
    reached = lambda s: band_energy(hf_band((base + s * noise).clamp(0, 1), cutoff)) >= target * e_hr  # noqa: E731
    lo, hi = 0.0, a
    while not reached(hi):  # clamping took energy away: widen the bracket until the target is inside it
        lo, hi = hi, 2 * hi
        if hi >= a * 2**30:
            return hi
    while hi - lo > rtol * hi:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if not reached(mid) else (lo, mid)
    return hi


def bicubic_plus_noise(bic, hr, target, seed, cutoff=0.25):
    """The baseline that cheap "detail" must beat: round(255·clamp(bic + a·n, 0, 1)) / 255, the bicubic upscale
    plus white Gaussian noise n ~ N(0, I) on (3,H,W) from `seed`, a = noise_scale(...) so that its hf_ratio is
    `target` (the student's, per image): as much high-band energy as the student's output, none of it real. A
    method whose hf_ratio is high but whose hf_corr, lf_psnr or LPIPS is no better has only added noise. (The
    8-bit rounding adds ≈ 1/12 level² per pixel: the saved image's hf_ratio is close to the target, not equal.)"""
    noise = torch.randn(bic.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    a = noise_scale(bic, noise, hr, target, cutoff)
    return to_uint8(bic.double() + a * noise).double() / 255


def run_methods(methods, pairs, out, device):
    """Upscale every LR image with every method; save the PNGs; return {(stem, method): latency_ms} and
    {method: peak memory}. Each method is warmed up on the first image first (not timed)."""
    latency, peak = {}, {}
    for name, fn in methods.items():
        fn(pairs[0][2].to(device))  # warm-up: allocations, cuDNN autotuning, compilation
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        for stem, _, lr in tqdm(pairs, desc=name, unit="img", leave=False):
            sr, latency[stem, name] = timed(lambda: fn(lr.to(device)), device)
            save_png(sr, out / name / f"{stem}.png")
        peak[name] = peak_memory(device)  # (on the CPU: the process's peak, earlier methods included)
    return latency, peak


def compare_grid(rows, labels, path, crop=160):
    """The same crop (the HR image's most detailed crop × crop square) from every column, labelled."""
    from PIL import Image, ImageDraw
    from torchvision.utils import make_grid

    tiles = []
    for imgs in rows:
        hr = imgs[-1]
        c = min(crop, hr.shape[1], hr.shape[2]) // SCALE * SCALE
        y = rgb_to_y(hr)[0]
        detail = (y[1:, :] - y[:-1, :]).abs()[:, :-1] + (y[:, 1:] - y[:, :-1]).abs()[:-1, :]
        score = F.avg_pool2d(detail[None, None], c - 1, stride=SCALE)[0, 0]
        i, j = divmod(score.argmax().item(), score.shape[1])
        tiles += [img[:, i * SCALE : i * SCALE + c, j * SCALE : j * SCALE + c] for img in imgs]
    grid = make_grid(tiles, nrow=len(labels), padding=4, pad_value=1.0)
    # (a white band above the grid for the labels)
    pil = Image.fromarray(to_uint8(torch.cat([torch.ones(3, 22, grid.shape[2]), grid], 1)).permute(1, 2, 0).numpy())
    for k, label in enumerate(labels):
        ImageDraw.Draw(pil).text((8 + k * (grid.shape[2] - 4) / len(labels), 5), label, fill=(0, 0, 0))
    pil.save(path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip())
    ap.add_argument("--ckpt", help="the student checkpoint (student.pt); default: the shipped pair, weights/student.pt "
                    "and weights/teacher.pt, unless --teacher alone is given")
    ap.add_argument("--teacher", help="the teacher checkpoint (default: teacher.pt beside --ckpt, if present)")
    ap.add_argument("--data", default="demo", help="HR images: a folder, DIV2K (its validation set), demo (the "
                    "held-out demo photos), photos (the held-out corpus photos, a fixed 512² crop of each), "
                    "demo-train (the demo's training photos), or several joined by '+' (photos+demo) "
                    "(default: %(default)s)")
    ap.add_argument("--lr-dir", help="LR inputs paired with the HR images by file name (default: degrade.py)")
    ap.add_argument("--out", default="report", help="report folder (default: %(default)s)")
    ap.add_argument("--teacher-steps", type=int, help="steps of the teacher's deterministic sampler (default: all T "
                    "steps of its checkpoint)")
    ap.add_argument("--degradation", choices=list(DEGRADATIONS), help="of the LR inputs degrade.py makes (default: "
                    "the one the student checkpoint was trained on, else the teacher's)")
    ap.add_argument("--tile", type=int, default=256, help="LR tile size for the networks (see sample.py) "
                    "(default: %(default)s)")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    ap.add_argument("--precision", choices=PRECISIONS, default="auto", help="see runtime.py (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the LR degradations and of the noise ε "
                    "(default: %(default)s)")
    ap.add_argument("--compare", action="append", default=[], metavar="NAME=DIR", help="score another method's "
                    "outputs beside these rows: DIR holds its ×4 PNG of every LR image, named as the HR image "
                    "(e.g. the peers' from tools/peers.py, run on this report's lr/ folder)")
    args = ap.parse_args(argv)
    compare = dict(spec.partition("=")[::2] for spec in args.compare)
    for name, folder in compare.items():
        if not name or not folder or not Path(folder).is_dir():
            raise SystemExit(f"error: --compare {name}={folder}: expected NAME=DIR with DIR a folder of images")
    device, out = resolve_device(args.device), Path(args.out)
    dtype = resolve_precision(args.precision, device)
    try:
        if not args.ckpt and not args.teacher:  # the shipped pair
            args.ckpt = str(shipped("student"))
        student = load_checkpoint(args.ckpt, "student", device) if args.ckpt else None
        given, args.teacher = args.teacher, args.teacher or str(Path(args.ckpt).with_name("teacher.pt"))
        teacher = load_checkpoint(args.teacher, "teacher", device) if given or Path(args.teacher).exists() else None
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        raise SystemExit(f"error: {e}") from None
    steps = None if teacher is None else teacher.cfg.T if args.teacher_steps is None else args.teacher_steps
    if teacher is not None and not 1 <= steps <= teacher.cfg.T:  # (checked before any image is made)
        raise SystemExit(f"error: --teacher-steps {steps}: the teacher {args.teacher} was trained with T = "
                         f"{teacher.cfg.T} steps; choose 1 to {teacher.cfg.T}")
    # The LR inputs' degradation: --degradation, else the one stored in the student checkpoint, else the teacher's
    trained = next(((m.info["degradation"], m.info["path"]) for m in (student, teacher) if m and m.info["degradation"]),
                   (None, None))
    degradation = args.degradation or trained[0]
    if args.lr_dir and args.degradation:
        raise SystemExit("error: --lr-dir gives the LR inputs; --degradation would make other ones: pass one of them")
    if degradation is None and not args.lr_dir:
        raise SystemExit("error: the checkpoint does not say which degradation it was trained on: pass --degradation "
                         f"({', '.join(DEGRADATIONS)}) to make the LR inputs, or --lr-dir with LR images of your own")
    source = f"{trained[1]} was trained on {trained[0]}" if trained[0] else "no checkpoint says what it was trained on"
    lr_inputs = f"{args.lr_dir}, paired by file name" if args.lr_dir else \
        (f"degrade.py, degradation {degradation} ({'--degradation; ' * bool(args.degradation)}{source}), "
         f"seed fixed per image name (base seed {args.seed})")

    # 1. Pairs, saved as the 8-bit PNGs everything is measured on
    pairs = load_pairs(args.data, args.lr_dir, args.seed, degradation)
    for stem, hr, lr in pairs:
        save_png(hr, out / "hr" / f"{stem}.png")
        save_png(lr, out / "lr" / f"{stem}.png")
    pairs = [(s, load_image(out / "hr" / f"{s}.png")[0], load_image(out / "lr" / f"{s}.png")[0]) for s, _, _ in pairs]
    print(f"{len(pairs)} image pairs from {args.data}; LR inputs: {lr_inputs}; {device}, {dtype}")

    # 2. The methods, each output saved as PNG. teacher_1step is the teacher's single network call at t = T (its
    #    estimate of the posterior mean): the student before distillation, since it starts as a copy of these
    #    weights. The student must beat it to show what distillation added.
    run, calls = dict(seed=args.seed, tile=args.tile, dtype=dtype), {"teacher": steps, "teacher_1step": 1, "student": 1}
    nets = {k: m for k, m in (("teacher", teacher), ("teacher_1step", teacher), ("student", student)) if m is not None}
    methods = {"bicubic": bicubic} | {k: lambda lr, m=m, n=calls[k]: upscale_image(m, lr, n, **run)
                                      for k, m in nets.items()}
    latency, peak = run_methods(methods, pairs, out, device)
    for name, folder in compare.items():  # other methods' outputs, paired by file name, exactly the HR's size
        files = {p.stem: p for p in find_images(folder)}
        for stem, hr, _ in pairs:
            if stem not in files or load_image(files[stem])[0].shape != hr.shape:
                raise SystemExit(f"error: --compare {name}: no {hr.shape[2]}x{hr.shape[1]} image (4× its LR) named "
                                 f"{stem} in {folder}")
            save_png(load_image(files[stem])[0], out / name / f"{stem}.png")
    # bicubic+noise is made in the metrics phase (it needs the student's saved output), shown right after bicubic
    shown = ["bicubic", *[NOISY] * (student is not None), *list(methods)[1:], *compare]

    # 3. Metrics on the saved files
    iqa = iqa_metrics(device)
    rows, grid_rows = [], []
    for stem, hr, lr in tqdm(pairs, desc="metrics", unit="img", leave=False):
        saved = {m: load_image(out / m / f"{stem}.png")[0] for m in [*methods, *compare]}
        if student is not None:  # the student's hf_ratio on this image; noise seeded by the image's name
            noisy = bicubic_plus_noise(saved["bicubic"], hr, hf_ratio(saved["student"], hr),
                                       seed=image_seed(f"{stem}/{NOISY}", args.seed))
            save_png(noisy, out / NOISY / f"{stem}.png")
            saved[NOISY] = load_image(out / NOISY / f"{stem}.png")[0]
        for m in shown:
            sr = saved[m]
            rows.append({"image": stem, "method": m, "psnr": psnr(sr, hr), "ssim": ssim(sr, hr),
                         "lf_psnr": lf_psnr(sr, hr), "hf_ratio": hf_ratio(sr, hr), "hf_corr": hf_corr(sr, hr),
                         "psnr_vs_teacher": psnr(sr, saved["teacher"]) if m == "student" and teacher else None,
                         **{k: None if isinstance(f, str) else f(sr, hr) for k, f in iqa.items()},  # (str: n/a)
                         "latency_ms": latency.get((stem, m))})  # None: bicubic+noise, --compare rows
        grid_rows.append([F.interpolate(lr[None], scale_factor=SCALE, mode="nearest")[0], *map(saved.get, shown), hr])
    compare_grid(grid_rows, ["LR", *shown, "HR"], out / "compare.png")

    # 4. Report: metrics.csv, summary.md, and the table on the terminal
    with open(out / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["image", "method", *METRIC_COLUMNS])
        w.writeheader()
        w.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows)
    command = "python evaluate.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(write_summary(out, rows, shown, nets, peak, iqa, args, steps, device, dtype, lr_inputs, command))
    print(f"report: {out}/ (summary.md, metrics.csv, compare.png); as a web page: python tools/webpage.py {out}")
    return 0


def mean(rows, method, key):
    """The mean of `key` over the rows of `method` that have it (None if none do)."""
    vals = [r[key] for r in rows if r["method"] == method and r.get(key) is not None]
    return sum(vals) / len(vals) if vals else None


def fmt(v, digits=4):
    """A number as the tables print it: 4 significant digits, n/a if missing."""
    return "n/a" if v is None or isinstance(v, str) else f"{v:.{digits}g}"  # (inf prints as inf)


def read_metrics(folder):
    """A report's metrics.csv as rows {column: float, or None where empty}; image and method stay strings."""
    with open(Path(folder) / "metrics.csv", newline="") as f:
        return [{k: v if k in ("image", "method") else float(v) if v else None for k, v in r.items()}
                for r in csv.DictReader(f)]


def write_summary(out, rows, methods, nets, peak, iqa, args, steps, device, dtype, lr_inputs, command):
    """Write summary.md (tools/webpage.py shows its Command and Set-up lines); return the terminal's table."""
    table = ["| method | " + " | ".join(METRIC_COLUMNS) + " | parameters | peak memory |",
             "|---" * (len(METRIC_COLUMNS) + 3) + "|"]
    params = {"bicubic": "0.0 M"} | {m: f"{sum(p.numel() for p in n.net.parameters()) / 1e6:.1f} M"
                                     for m, n in nets.items()}
    for m in methods:
        cells = [fmt(mean(rows, m, k)) for k in METRIC_COLUMNS] + [params.get(m, "n/a"), peak.get(m, "n/a")]
        table.append(f"| {m} | " + " | ".join(cells) + " |")
    speed = "" if not {"teacher", "student"} <= nets.keys() else (
        f"\nStudent speed-up over the {steps}-step teacher: "
        f"{mean(rows, 'teacher', 'latency_ms') / mean(rows, 'student', 'latency_ms'):.1f}× (mean latency).\n")
    unavailable = "".join(f"- {k}: n/a, {v}\n" for k, v in iqa.items() if isinstance(v, str))
    versions = [f"{p} {__import__(p).__version__}" if importlib.util.find_spec(p) else f"{p} not installed"
                for p in ("torch", "torchvision", "diffusers", "open_clip", "numpy", "PIL")]
    timing = "CUDA-synchronized" if device.type == "cuda" else "CPU wall time"
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.machine()
    runs = (f"the teacher runs its deterministic sampler for {steps} steps (teacher_1step: its single network call "
            "at t = T), the student one step" if "teacher" in nets else "the student runs one step")
    text = f"""# Evaluation: {len(rows) // len(methods)} images ({args.data})

{chr(10).join(table)}
{speed}
Command: `{command}`

## Metric settings (metrics.py defines each metric, with its conventions and why)
- Every method is measured from its saved 8-bit PNG; psnr, ssim, lf_psnr, hf_ratio, hf_corr on the Y channel of
  ITU-R BT.601 (MATLAB's rgb2ycbcr), no border crop, in fp64; ssim exactly as pyiqa computes it.
- lf_psnr: of the 4×4 block means; hf_ratio, hf_corr: in the band above a quarter of Nyquist.
- bicubic+noise: bicubic plus white noise scaled per image to the student's hf_ratio: the baseline that cheap
  "detail" must beat. A method whose hf_ratio is high but whose hf_corr, lf_psnr or lpips is no better than
  this row's has only added noise.
- psnr_vs_teacher: the student's output against the teacher's (agreement, not quality); lpips (AlexNet: what
  papers call LPIPS), lpips_vgg, dists, niqe: lower is better.
{unavailable}- latency_ms: one image after a warm-up image, {timing}; n/a for the rows not run here (bicubic+noise,
  --compare); {runs}; networks run in tiles of at most {args.tile} LR pixels.

## Set-up
- checkpoints: {", ".join(f"{k} {nets[k].info['path']}" for k in ("student", "teacher") if k in nets)}
- LR inputs: {lr_inputs}
- device: {device_name} ({device}), {str(dtype).removeprefix("torch.")}
- versions: Python {platform.python_version()}, {", ".join(versions)}
"""
    (out / "summary.md").write_text(text)
    return "\n".join(table) + "\n" + speed + unavailable


if __name__ == "__main__":
    sys.exit(main())
