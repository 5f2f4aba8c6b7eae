"""
evaluate.py: bicubic vs the multi-step teacher vs the one-step student, with the field's metrics and speed.

    python evaluate.py --data demo --degradation light                           # the shipped pair (weights/)
    python evaluate.py --ckpt runs/vpdsr/student.pt --data demo                  # the held-out demo photos
    python evaluate.py --ckpt runs/vpdsr/student.pt --data photos+demo           # and the held-out corpus photos
    python evaluate.py --ckpt runs/vpdsr/student.pt --data DIV2K                 # DIV2K's 100 validation images
    python evaluate.py --ckpt runs/vpdsr/student.pt --data RealSR/HR --lr-dir RealSR/LR
    python evaluate.py --ckpt runs/vpdsr/student.pt --teacher runs/vpdsr/teacher.pt --teacher-steps 2 --data demo
    python evaluate.py --teacher runs/vpdsr/teacher.pt --data photos+demo        # a teacher alone, before distillation
    python evaluate.py --data photos+demo --degradation light --compare realesrgan=results/peers/realesrgan

HR images are cropped (top-left) to a multiple of 4. Without --lr-dir, each LR input is made by degrade.py
with a seed fixed per image name, so every method sees the same input and a rerun gives the same numbers.
Every output is saved as an 8-bit PNG first and the metrics are computed, in fp32 (fp64 inside), on the
saved files, on the Y channel.

Methods (rows): bicubic; bicubic+noise (bicubic plus white noise with the student's high-frequency energy:
the baseline that cheap "detail" must beat); teacher (its deterministic sampler, all T steps of its
checkpoint unless --teacher-steps says otherwise) and teacher_1step (its single network call at t = T),
when a teacher checkpoint is there; student (one step), when a student checkpoint is given (bicubic+noise
needs it).

Metrics (columns): psnr and ssim (the field's definitions, SSIM exactly as pyiqa computes it), lf_psnr
(structure: PSNR of 4×4 block means), hf_ratio (detail energy) and hf_corr (is that detail the real
detail?), psnr_vs_teacher, LPIPS (AlexNet and VGG16), DISTS and NIQE (python metrics.py --fetch-weights,
once), pyiqa's CLIPIQA / MUSIQ / MANIQA where installed, latency. --compare NAME=DIR adds another method's
outputs as a row (tools/peers.py makes Real-ESRGAN's and RealSR's).

Written to --out (default report/): hr/, lr/, bicubic/, bicubic+noise/, teacher/, teacher_1step/, student/
(the images), metrics.csv (one row per image and method), summary.md (means, metric settings, versions,
device) and compare.png (the same crop of LR | every method | HR for every image).
"""

import argparse
import csv
import sys
import zlib
from pathlib import Path

import torch
import torch.nn.functional as F

from checkpoint import load_checkpoint, shipped
from data import eval_images, find_div2k, find_images, load_image, save_png
from degrade import PRESETS, degrade
from metrics import (IQA_METRICS, SCALE, bicubic_plus_noise, hf_corr, hf_ratio, iqa_metrics, lf_psnr, psnr,
                     rgb_to_y, ssim)
from report import fmt, write_html
from runtime import PRECISIONS, peak_memory, resolve_device, resolve_precision, timed
from sample import upscale_image

# ---------------------------------------------------------------------------------------------------
# Pairs: HR images and their LR inputs
# ---------------------------------------------------------------------------------------------------


def image_seed(stem, seed):
    """A seed fixed by the image's name (not its position), so adding images changes no other image's LR."""
    return zlib.crc32(stem.encode()) ^ seed


def load_pairs(data, lr_dir, seed, preset="resshift"):
    """[(stem, hr, lr)]: HR cropped top-left to a multiple of the scale; LR from --lr-dir (paired by file
    name) or made by degrade.py with a per-image seed."""
    try:
        named = eval_images(data)  # demo, demo-train, photos (the held-out corpus crops), or a '+' of them
        if named is not None:
            hrs = named
        else:
            folder = find_div2k("val") if data.lower() == "div2k" else Path(data)
            if not folder.is_dir():
                raise SystemExit(f"error: --data {data}: no such folder (and not 'demo', 'demo-train', 'photos' "
                                 "or 'DIV2K')")
            hrs = [(p.stem, p) for p in find_images(folder)]
    except FileNotFoundError as e:
        raise SystemExit(f"error: {e}") from None
    if not hrs:
        raise SystemExit(f"error: no images found in {data}")
    stems = [s for s, _ in hrs]
    if len(set(stems)) != len(stems):
        raise SystemExit("error: HR images with the same name in different folders: " +
                         ", ".join(sorted({s for s in stems if stems.count(s) > 1})))
    lr_files = {}
    if lr_dir:
        if not Path(lr_dir).is_dir():
            raise SystemExit(f"error: --lr-dir {lr_dir}: no such folder")
        found = find_images(lr_dir)
        lr_stems = [p.stem for p in found]
        if len(set(lr_stems)) != len(lr_stems):
            raise SystemExit(f"error: LR images with the same name in {lr_dir}: "
                             + ", ".join(sorted({s for s in lr_stems if lr_stems.count(s) > 1})))
        lr_files = {p.stem: p for p in found}
        missing_lr = sorted(set(stems) - set(lr_files))
        extra_lr = sorted(set(lr_files) - set(stems))
        if missing_lr or extra_lr:
            raise SystemExit("error: HR and LR images must pair up by file name.\n"
                             + (f"  HR without LR in {lr_dir}: {', '.join(missing_lr)}\n" if missing_lr else "")
                             + (f"  LR without HR in {data}: {', '.join(extra_lr)}\n" if extra_lr else ""))
    pairs = []
    for stem, src in hrs:
        hr = load_image(src)[0] if isinstance(src, Path) else src
        hr = hr[:, : hr.shape[1] // SCALE * SCALE, : hr.shape[2] // SCALE * SCALE]
        if stem in lr_files:
            lr = load_image(lr_files[stem])[0]
            if tuple(lr.shape[1:]) != (hr.shape[1] // SCALE, hr.shape[2] // SCALE):
                raise SystemExit(f"error: {lr_files[stem]} is {lr.shape[2]}x{lr.shape[1]}, but its HR image {src} "
                                 f"(cropped to {hr.shape[2]}x{hr.shape[1]}) needs a {SCALE}x smaller LR image")
        else:
            lr = degrade(hr[None], PRESETS[preset], torch.Generator().manual_seed(image_seed(stem, seed)))[1][0]
        pairs.append((stem, hr, lr))
    return pairs


# ---------------------------------------------------------------------------------------------------
# Running the methods
# ---------------------------------------------------------------------------------------------------


def bicubic(lr):
    return F.interpolate(lr[None], scale_factor=SCALE, mode="bicubic", align_corners=False)[0].clamp(0, 1)


def run_methods(methods, pairs, out, device):
    """Upscale every LR image with every method; save the PNGs; return {(stem, method): latency_ms} and
    {method: peak memory}. Each method is warmed up on the first image first (not timed)."""
    from tqdm import tqdm

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
        y_map = rgb_to_y(hr)[0]
        detail = (y_map[1:, :] - y_map[:-1, :]).abs()[:, :-1] + (y_map[:, 1:] - y_map[:, :-1]).abs()[:-1, :]
        score = F.avg_pool2d(detail[None, None], c - 1, stride=SCALE)[0, 0]
        i, j = divmod(score.argmax().item(), score.shape[1])
        top, left = i * SCALE, j * SCALE
        tiles += [img[:, top : top + c, left : left + c] for img in imgs]
    grid = make_grid(tiles, nrow=len(labels), padding=4, pad_value=1.0)
    header = torch.ones(3, 22, grid.shape[2])
    canvas = torch.cat([header, grid], 1)
    pil = Image.fromarray((canvas.permute(1, 2, 0) * 255).round().byte().numpy())
    draw, width = ImageDraw.Draw(pil), (grid.shape[2] - 4) / len(labels)
    for k, label in enumerate(labels):
        draw.text((4 + k * width + 4, 5), label, fill=(0, 0, 0))
    pil.save(path)


# ---------------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------------


NOISY = "bicubic+noise"  # the baseline's label, and its folder under --out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip(),
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--ckpt", help="the student checkpoint (student.pt); default: the shipped pair, weights/student.pt "
                    "and weights/teacher.pt, unless --teacher alone is given")
    ap.add_argument("--teacher", help="the teacher checkpoint (default: teacher.pt beside --ckpt, if present)")
    ap.add_argument("--data", default="demo", help="HR images: a folder, DIV2K (its validation set), demo (the "
                    "held-out demo photos), photos (the held-out corpus photos, a fixed 512² crop of each), "
                    "demo-train (the demo's training photos), or several joined by '+' (photos+demo)")
    ap.add_argument("--lr-dir", help="LR inputs paired with the HR images by file name (default: degrade.py)")
    ap.add_argument("--out", default="report", help="report folder")
    ap.add_argument("--teacher-steps", type=int, default=None,
                    help="steps of the teacher's deterministic sampler; None: all T steps of its checkpoint")
    ap.add_argument("--degradation", choices=list(PRESETS), default="resshift", help="when LR is made here")
    ap.add_argument("--tile", type=int, default=256, help="LR tile size for the networks (see sample.py)")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    ap.add_argument("--precision", choices=PRECISIONS, default="auto", help="see runtime.py")
    ap.add_argument("--seed", type=int, default=0, help="seed of the LR degradations and of the noise ε")
    ap.add_argument("--compare", action="append", default=[], metavar="NAME=DIR", help="score another method's "
                    "outputs beside these rows: DIR holds its ×4 PNG of every LR image, named as the HR image "
                    "(e.g. the peers' from tools/peers.py, run on this report's lr/ folder)")
    args = ap.parse_args(argv)
    compare = {}
    for spec in args.compare:
        name, sep, folder = spec.partition("=")
        if not sep or not name or not Path(folder).is_dir():
            raise SystemExit(f"error: --compare {spec}: expected NAME=DIR with DIR a folder of images")
        compare[name] = Path(folder)
    args.compare_dirs = compare

    device = resolve_device(args.device)
    dtype = resolve_precision(args.precision, device)
    out = Path(args.out)
    try:
        if not args.ckpt and not args.teacher:  # the shipped pair
            args.ckpt = str(shipped("student"))
        student = load_checkpoint(args.ckpt, kind="student", device=device) if args.ckpt else None
        teacher_path = Path(args.teacher) if args.teacher else Path(args.ckpt).with_name("teacher.pt")
        teacher = load_checkpoint(teacher_path, kind="teacher", device=device) \
            if args.teacher or teacher_path.exists() else None
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        raise SystemExit(f"error: {e}") from None
    # The teacher's steps: its own T unless asked otherwise, checked here so that a wrong number fails
    # before any image is made, with the range that would work.
    teacher_steps = None
    if teacher is not None:
        teacher_steps = teacher.cfg.T if args.teacher_steps is None else args.teacher_steps
        if not 1 <= teacher_steps <= teacher.cfg.T:
            raise SystemExit(f"error: --teacher-steps {teacher_steps}: the teacher {teacher_path} was trained with "
                             f"T = {teacher.cfg.T} steps; choose 1 to {teacher.cfg.T}")

    # 1. Pairs, saved as the 8-bit PNGs everything is measured on
    pairs = load_pairs(args.data, args.lr_dir, args.seed, args.degradation)
    for stem, hr, lr in pairs:
        save_png(hr, out / "hr" / f"{stem}.png")
        save_png(lr, out / "lr" / f"{stem}.png")
    pairs = [(s, load_image(out / "hr" / f"{s}.png")[0], load_image(out / "lr" / f"{s}.png")[0]) for s, _, _ in pairs]
    print(f"{len(pairs)} image pairs from {args.data}" + (f" and {args.lr_dir}" if args.lr_dir else
          f", LR by degrade.py ({args.degradation}, seed {args.seed})") + f"; {device}, {dtype}")

    # 2. The methods, each output saved as PNG. teacher_1step is the teacher's single network call at
    #    t = T (its estimate of the posterior mean): the student before distillation, since it starts as a
    #    copy of these weights. The student must beat it to show what distillation added.
    tile, nets = args.tile, {"student": student} if student is not None else {}
    methods = {"bicubic": bicubic}
    if teacher is not None:
        nets["teacher"] = nets["teacher_1step"] = teacher
        methods["teacher"] = lambda lr: upscale_image(teacher, lr, teacher_steps, seed=args.seed, tile=tile,
                                                      dtype=dtype)
        methods["teacher_1step"] = lambda lr: upscale_image(teacher, lr, 1, seed=args.seed, tile=tile, dtype=dtype)
    if student is not None:
        methods["student"] = lambda lr: upscale_image(student, lr, 1, seed=args.seed, tile=tile, dtype=dtype)
    latency, peak = run_methods(methods, pairs, out, device)
    # bicubic+noise is made in the metrics phase (it needs the student's saved output), right after bicubic
    shown = ["bicubic", *([NOISY] if student is not None else []), *(m for m in methods if m != "bicubic"), *compare]
    for name, folder in compare.items():  # other methods' outputs, paired by file name, exactly the HR's size
        files = {p.stem: p for p in find_images(folder)}
        for stem, hr, _ in pairs:
            if stem not in files:
                raise SystemExit(f"error: --compare {name}: no image named {stem} in {folder}")
            sr = load_image(files[stem])[0]
            if sr.shape != hr.shape:
                raise SystemExit(f"error: --compare {name}: {files[stem]} is not {hr.shape[2]}x{hr.shape[1]} "
                                 "(4× its LR)")
            save_png(sr, out / name / f"{stem}.png")

    # 3. Metrics on the saved files, in fp32 (fp64 inside)
    from tqdm import tqdm

    iqa = iqa_metrics(device)
    rows, grid_rows = [], []
    for stem, hr, lr in tqdm(pairs, desc="metrics", unit="img", leave=False):
        saved = {m: load_image(out / m / f"{stem}.png")[0] for m in [*methods, *compare]}
        # The bicubic+noise baseline: the saved bicubic image plus white noise with the student's hf_ratio
        # on this image, drawn from a seed fixed by the image's name (so reruns give the same numbers)
        if student is not None:
            noisy = bicubic_plus_noise(saved["bicubic"], hr, hf_ratio(saved["student"], hr),
                                       seed=image_seed(f"{stem}/{NOISY}", args.seed))
            save_png(noisy, out / NOISY / f"{stem}.png")
            saved[NOISY] = load_image(out / NOISY / f"{stem}.png")[0]
        outputs = {m: saved[m] for m in shown}
        for m, sr in outputs.items():
            row = {"image": stem, "method": m, "psnr": psnr(sr, hr), "ssim": ssim(sr, hr),
                   "lf_psnr": lf_psnr(sr, hr), "hf_ratio": hf_ratio(sr, hr), "hf_corr": hf_corr(sr, hr),
                   "psnr_vs_teacher": psnr(sr, outputs["teacher"]) if m == "student" and teacher else None}
            for name, metric in iqa.items():  # (n/a where a metric's weights are missing: its reason is kept)
                with torch.no_grad():
                    row[name] = None if isinstance(metric, str) else metric(sr, hr)
            row["latency_ms"] = latency.get((stem, m))  # None (n/a) for bicubic+noise: not a method to time
            rows.append(row)
        grid_rows.append([F.interpolate(lr[None], scale_factor=SCALE, mode="nearest")[0], *outputs.values(), hr])
    compare_grid(grid_rows, ["LR", *shown, "HR"], out / "compare.png")

    # 4. Report: metrics.csv, summary.md, and the table on the terminal
    columns = ["image", "method", *METRIC_COLUMNS]
    with open(out / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r[k]) for k in columns})
    command = "python evaluate.py " + " ".join(sys.argv[1:] if argv is None else argv)
    summary, setup = write_summary(out, rows, shown, nets, peak, iqa, args, teacher_steps, device, dtype,
                                   len(pairs), command)
    # 5. The web page: a before/after slider per image over the saved PNGs, the tables and the set-up
    shown_columns = [k for k in METRIC_COLUMNS if any(r.get(k) is not None for r in rows)]
    means = [{"method": m, **{k: mean(rows, m, k) for k in shown_columns}} for m in shown]
    write_html(out, {s: hr.shape[-1] for s, hr, _ in pairs}, ["lr", *shown, "hr"], rows, means, shown_columns,
               [f"Command: {command}", *setup])
    print(summary)
    print(f"report: {out}/index.html (open it in a browser), summary.md, metrics.csv, compare.png")
    return 0


# The per-image numbers, in the order of metrics.csv and of the summary table
METRIC_COLUMNS = ["psnr", "ssim", "lf_psnr", "hf_ratio", "hf_corr", "psnr_vs_teacher", *IQA_METRICS, "latency_ms"]


def mean(rows, method, key):
    vals = [r[key] for r in rows if r["method"] == method and r.get(key) is not None]
    return sum(vals) / len(vals) if vals else None


def write_summary(out, rows, methods, nets, peak, iqa, args, teacher_steps, device, dtype, n, command):
    """Write summary.md; returns (the table for the terminal, the set-up lines that index.html shows too)."""
    import platform

    table = ["| method | " + " | ".join(METRIC_COLUMNS) + " | parameters | peak memory |",
             "|---" * (len(METRIC_COLUMNS) + 3) + "|"]
    for m in methods:
        params = f"{sum(p.numel() for p in nets[m].net.parameters()) / 1e6:.1f} M" if m in nets else \
            ("0.0 M" if m == "bicubic" else "n/a")
        cells = [fmt(mean(rows, m, k)) for k in METRIC_COLUMNS] + [params, peak.get(m, "n/a")]
        table.append(f"| {m} | " + " | ".join(cells) + " |")
    speed = ""
    if "teacher" in methods and "student" in methods:
        teacher_ms, student_ms = mean(rows, "teacher", "latency_ms"), mean(rows, "student", "latency_ms")
        speed = (f"\nStudent speed-up over the {teacher_steps}-step teacher: {teacher_ms / student_ms:.1f}× "
                 "(mean latency).\n")
    unavailable = [f"- {k}: n/a, {v}" for k, v in iqa.items() if isinstance(v, str)]
    versions = []
    for pkg in ("torch", "torchvision", "diffusers", "open_clip", "numpy", "PIL", "pyiqa"):
        try:
            versions.append(f"{pkg} {__import__(pkg).__version__}")
        except ImportError:
            versions.append(f"{pkg} not installed")
    checkpoints = ", ".join(([f"student {args.ckpt}"] if args.ckpt else []) + (
        [f"teacher {args.teacher or Path(args.ckpt).with_name('teacher.pt')}"] if "teacher" in methods else []))
    lr_inputs = args.lr_dir or (f"degrade.py, preset {args.degradation}, seed fixed per image name "
                                f"(base seed {args.seed})")
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.machine()
    timing = "CUDA-synchronized" if device.type == "cuda" else "CPU wall time"
    runs = (f"The teacher runs its deterministic sampler for {teacher_steps} steps (teacher_1step: its single "
            f"network call at t = T); the student one step." if "teacher" in methods else
            "No teacher checkpoint: the student runs one step.")
    setup = [f"- checkpoints: {checkpoints}", f"- LR inputs: {lr_inputs}",
             f"- device: {device_name} ({device}), {str(dtype).removeprefix('torch.')}",
             f"- versions: Python {platform.python_version()}, {', '.join(versions)}"]
    compared = "".join(f"; {k} from {v}" for k, v in args.compare_dirs.items())
    text = f"""# Evaluation: {n} images ({args.data}{', LR from ' + args.lr_dir if args.lr_dir else ''})

{chr(10).join(table)}
{speed}
Command: `{command}`

## Metric settings
All metrics are computed on the saved 8-bit PNGs, on the Y channel of ITU-R BT.601 YCbCr (MATLAB
rgb2ycbcr), no border crop, in fp64.
- psnr: peak 1, Y not rounded (basicsr's convention).
- ssim: pyiqa's `ssim` (test_y_channel, color_space ycbcr), reproduced here: Y rounded to 8 bits, L = 255,
  11×11 Gaussian window with σ = 1.5, valid-window statistics, contrast-structure term clipped at 0, no
  downsampling.
- lf_psnr: PSNR of the 4×4 block means of Y (structure: is the input's content kept?).
- hf_ratio: spectral energy of the output's luma above a quarter of Nyquist (Hann-windowed, mean removed),
  divided by the HR image's (1.0 = as much fine detail energy as the real image, real or not).
- hf_corr: correlation of that same band with the HR image's (1 = the real detail; noise or invented
  texture ≈ 0, however strong).
- bicubic+noise: the bicubic image plus white Gaussian noise scaled per image to the student's hf_ratio,
  clamped and saved as 8 bits, then measured like every method. It is the baseline that cheap "detail"
  must beat: as much high-frequency energy as the student, none of it real. A method whose hf_ratio is
  high but whose hf_corr, lf_psnr or lpips is no better than this row's has only added noise.
- psnr_vs_teacher: PSNR between the student's and the teacher's outputs (agreement, not quality).
- lpips (AlexNet, v0.1; what papers report as LPIPS), lpips_vgg (VGG16) and dists: full-reference
  perceptual distances (lower = closer to the HR image); niqe: no-reference naturalness (lower = more
  natural). Written out in metrics.py with their published weights, checked against pyiqa's official
  scores on its calibration pairs. clipiqa, musiq, maniqa: pyiqa's, where it and their weights can be had.
{chr(10).join(unavailable)}
- latency_ms: one image, after a warm-up image, {timing}; n/a for bicubic+noise (a reference, not a method)
  and for rows from --compare (outputs made elsewhere{compared}).
  {runs}
  Networks run in tiles of at most {args.tile} LR pixels.

## Set-up
{chr(10).join(setup)}
"""
    (out / "summary.md").write_text(text)
    return "\n".join(table) + "\n" + speed + ("\n".join(unavailable) + "\n" if unavailable else ""), setup


if __name__ == "__main__":
    sys.exit(main())
