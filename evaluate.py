"""
evaluate.py: bicubic vs the multi-step teacher vs the one-step student, with the field's metrics and speed.

    python evaluate.py --ckpt runs/vpdsr/student.pt --data demo                  # the held-out demo photos
    python evaluate.py --ckpt runs/vpdsr/student.pt --data DIV2K                 # DIV2K's 100 validation images
    python evaluate.py --ckpt runs/vpdsr/student.pt --data RealSR/HR --lr-dir RealSR/LR
    python evaluate.py --ckpt runs/vpdsr/student.pt --teacher runs/vpdsr/teacher.pt --teacher-steps 2 --data demo

HR images are cropped (top-left) to a multiple of 4. Without --lr-dir, each LR input is made by degrade.py
with a seed fixed per image name, so every method sees the same input and a rerun gives the same numbers.
Every output is saved as an 8-bit PNG first and the metrics are computed, in fp32 (fp64 inside), on the
saved files, on the Y channel.

Methods (rows): bicubic; bicubic+noise (bicubic plus white noise with the student's high-frequency energy:
the baseline that cheap "detail" must beat); teacher (its deterministic sampler, all T steps of its
checkpoint unless --teacher-steps says otherwise) and teacher_1step (its single network call at t = T),
when a teacher checkpoint is there; student (one step).

Metrics (columns): psnr and ssim (the field's definitions, SSIM exactly as pyiqa computes it), lf_psnr
(structure: PSNR of 4×4 block means), hf_ratio (detail energy) and hf_corr (is that detail the real
detail?), psnr_vs_teacher, pyiqa's LPIPS / CLIPIQA / MUSIQ / NIQE / MANIQA where installed, latency.

Written to --out (default report/): hr/, lr/, bicubic/, bicubic+noise/, teacher/, teacher_1step/, student/
(the images), metrics.csv (one row per image and method), summary.md (means, metric settings, versions,
device) and compare.png (the same crop of LR | every method | HR for every image).
"""

import argparse
import csv
import importlib.util
import math
import sys
import zlib
from pathlib import Path

import torch
import torch.nn.functional as F

from degrade import PRESETS, degrade, demo_images, find_div2k, find_images, load_image, save_png
from losses import high_pass_mask
from model import load_checkpoint
from sample import peak_memory, resolve_device, resolve_precision, timed, upscale_image

SCALE = 4
IQA_METRICS = ("lpips", "clipiqa", "musiq", "niqe", "maniqa")  # pyiqa names; lower is better for lpips, niqe

# ---------------------------------------------------------------------------------------------------
# Metrics, written out here: the field's conventions (MATLAB / basicsr / pyiqa), short and testable.
# Every metric reads the Y channel of the saved 8-bit PNGs, so all methods are measured on the same
# footing: what a user would get on disk.
# ---------------------------------------------------------------------------------------------------


def rgb_to_y(img):
    """Luma of ITU-R BT.601, as MATLAB's rgb2ycbcr: Y = 16 + 65.481·R + 128.553·G + 24.966·B for RGB in
    [0,1], returned divided by 255 (so Y ∈ [16/255, 235/255])."""
    w = torch.tensor([65.481, 128.553, 24.966], dtype=img.dtype, device=img.device).view(3, 1, 1)
    return ((img * w).sum(-3, keepdim=True) + 16.0) / 255.0


def _psnr_y(ya, yb):
    """PSNR = 10·log10(1 / MSE) in dB of two luma maps in [0,1] (peak 1); identical maps give +inf."""
    mse = ((ya - yb) ** 2).mean().item()
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def psnr(a, b):
    """PSNR in dB on the Y channel, images in [0,1] (peak 1), no border crop. Y is not rounded to 8 bits
    (basicsr's convention for PSNR)."""
    return _psnr_y(rgb_to_y(a.double()), rgb_to_y(b.double()))


def lf_psnr(sr, hr, factor=SCALE):
    """Structure: PSNR (Y channel, peak 1, as `psnr`) of the factor×factor block means,

        lf_psnr = PSNR(avgpool_f(Y_sr), avgpool_f(Y_hr)),   f = 4 (F.avg_pool2d, kernel f, stride f).

    A ×4 LR image carries about one number per 4×4 HR block, so this asks "is the input's structure
    kept?" while ignoring the detail inside each block: invented texture that averages out costs
    nothing here, but shifted edges, colour casts and wrong shapes do. Rows and columns beyond the last
    full block are dropped (evaluate.py's images are multiples of 4, so none are)."""
    pool = lambda img: F.avg_pool2d(rgb_to_y(img.double())[None], factor, stride=factor)  # noqa: E731
    return _psnr_y(pool(sr), pool(hr))


def ssim(a, b):
    """SSIM as the field reports it: pyiqa's `create_metric('ssim', test_y_channel=True,
    color_space='ycbcr')` (pyiqa 0.1.16), which follows Wang et al.'s MATLAB `ssim_index`. Step by step,
    as pyiqa does it:

    1. Luma rounded to 8 bits, as MATLAB's rgb2ycbcr on uint8 images: for RGB in [0,1],
           Y = round(16 + 65.481·R + 128.553·G + 24.966·B) ∈ {16, ..., 235},   dynamic range L = 255.
       Y is computed in float32 before rounding, as pyiqa does for the float32 images it is given (a
       few pixels per image lie within float32 error of a half, and fp64 would round them the other
       way: a 1e-6 difference in SSIM); torch.round takes halves to even.
    2. Window w: 11×11 Gaussian, σ = 1.5, normalized to sum 1 (MATLAB's fspecial('gaussian', 11, 1.5)),
       its weights rounded to float32 as pyiqa stores them, the arithmetic in fp64 as pyiqa's.
    3. Local statistics by correlation with w at "valid" positions only (no padding; the map is
       (H−10)×(W−10)):  μ_x = w⋆x,  σ_x² = w⋆x² − μ_x²,  σ_xy = w⋆(x·y) − μ_x·μ_y  (biased, weights w).
    4. l = (2·μ_x·μ_y + C1) / (μ_x² + μ_y² + C1),   cs = max(0, (2·σ_xy + C2) / (σ_x² + σ_y² + C2)),
       C1 = (0.01·L)², C2 = (0.03·L)²,  SSIM = mean over the map of l·cs.
       The max(0, ·) is pyiqa's: where an output's texture is anti-correlated with the real one (common
       for generated detail), cs counts 0 instead of pulling the mean down; scikit-image and basicsr do
       not clip, hence their lower numbers on such outputs.
    5. No downsampling and no border crop: pyiqa's 'ssim' has downsample=False. (MATLAB's ssim_index
       would first average-pool by f = max(1, round(min(H,W)/256)); pyiqa only does so when asked.)
    """
    # 1. 8-bit luma in 0..255: rounded from float32 as pyiqa does, then fp64 for everything after
    x, y = ((rgb_to_y(img.float()) * 255).round().double()[None] for img in (a, b))
    # 2. fspecial's window: exp(−(u²+v²)/2σ²) on an 11×11 grid centred at 0, normalized, stored as float32
    u = torch.arange(11, dtype=torch.float64) - 5
    g = torch.exp(-(u[:, None] ** 2 + u[None, :] ** 2) / (2 * 1.5**2))
    win = (g / g.sum()).float().double().view(1, 1, 11, 11)
    # 3. valid-position local statistics (F.conv2d is a correlation; w is symmetric anyway)
    mu_x, mu_y = F.conv2d(x, win), F.conv2d(y, win)
    var_x = F.conv2d(x * x, win) - mu_x**2
    var_y = F.conv2d(y * y, win) - mu_y**2
    cov = F.conv2d(x * y, win) - mu_x * mu_y
    # 4. luminance term times the clipped contrast-structure term, averaged over the map
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    cs = ((2 * cov + c2) / (var_x + var_y + c2)).clamp(min=0)
    lum = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    return (lum * cs).mean().item()


# The high-frequency band: one definition, shared by hf_ratio, hf_corr and the bicubic+noise baseline.
# A band whose RMS (in the pixel domain, luma in [0,1]) is below HF_FLOOR counts as empty: far below one
# 8-bit step (1/255 ≈ 0.004), far above fp64 round-off on a flat image (≈ 1e-17).
HF_FLOOR = 1e-9


def hf_band(img, cutoff=0.25):
    """The FFT coefficients of the image's luma above `cutoff` (a fraction of Nyquist; 0.25 is the band a
    ×4 LR image lacks), as a 1-D complex fp64 tensor:

        A = FFT2((Y − mean(Y)) · W)[M],   W = Hann(H) ⊗ Hann(W),   M = losses.high_pass_mask(H, W, cutoff).

    The mean is removed so that the band (which excludes DC, but not the window's own spectrum) does not
    depend on the image's brightness. The Hann window tapers the image to zero at its borders: the FFT
    treats the image as periodic, and the jump between opposite borders would otherwise add the same
    false detail to every image. A is linear in the image: band(x + a·n) = band(x) + a·band(n)."""
    y = rgb_to_y(img.double())[0]
    h, w = y.shape
    window = torch.outer(torch.hann_window(h, periodic=False, dtype=torch.float64),
                         torch.hann_window(w, periodic=False, dtype=torch.float64))
    mask = high_pass_mask(h, w, cutoff).bool()
    return torch.fft.fft2((y - y.mean()) * window)[mask]


def _energy(band):
    """Σ|A|², the band's energy."""
    return band.abs().pow(2).sum().item()


def _is_empty(energy, shape):
    """Whether a band of this energy, from an image of this (H, W), is empty: by Parseval (unnormalized
    FFT) the band's pixel-domain RMS is √(Σ|A|²) / (H·W)."""
    return math.sqrt(energy) < HF_FLOOR * shape[-2] * shape[-1]


def hf_ratio(sr, hr, cutoff=0.25):
    """A weight-free proxy for perceived detail: the energy of the output's high band over the HR image's,

        hf_ratio = Σ|A_sr|² / Σ|A_hr|²   (A = hf_band: windowed, mean-removed luma, FFT, above `cutoff`).

    1.0 = as much fine detail as the real image; a bicubic upscale is far below 1; noise or artifacts can
    push it above. It counts energy, not correctness: white noise raises it as well as real detail
    (hf_corr and the bicubic+noise baseline tell the two apart). NaN when the HR image has no detail at
    all (a flat image), where the ratio is undefined."""
    e_hr = _energy(hf_band(hr, cutoff))
    return math.nan if _is_empty(e_hr, hr.shape) else _energy(hf_band(sr, cutoff)) / e_hr


def hf_corr(sr, hr, cutoff=0.25):
    """Is the detail the real detail? The Pearson correlation of the output's and the HR image's high
    bands, exactly the band hf_ratio measures:

        hf_corr = Re(Σ A_sr · conj(A_hr)) / √(Σ|A_sr|² · Σ|A_hr|²)   ∈ [−1, 1]

    (by Parseval, the correlation of the two high-passed, windowed images in the pixel domain; both are
    zero-mean since the band excludes DC). 1 = the HR image's own detail, at any strength; noise or
    invented texture, however strong, is uncorrelated with the real detail and scores ≈ 0; added to the
    real detail, it adds energy to the band but nothing to its projection onto the real detail, so the
    score falls to about √(E_hr / E_sr), the real detail's share of the band's amplitude. 0.0 when either
    band is empty (a flat or very blurred output, where the correlation is undefined)."""
    a, b = hf_band(sr, cutoff), hf_band(hr, cutoff)
    e_a, e_b = _energy(a), _energy(b)
    if _is_empty(e_a, sr.shape) or _is_empty(e_b, hr.shape):
        return 0.0
    return (a * b.conj()).real.sum().item() / math.sqrt(e_a * e_b)


# ---------------------------------------------------------------------------------------------------
# The bicubic+noise baseline: as much "detail" energy as the student, none of it real
# ---------------------------------------------------------------------------------------------------


def noise_scale(base, noise, hr, target, cutoff=0.25, rtol=1e-4):
    """The scale a ≥ 0 at which hf_ratio(clamp(base + a·noise, 0, 1), hr) = target.

    Without the clamp the answer is exact: the band is linear (A(base + a·n) = B + a·N), so

        hf_ratio(a)·E_hr = |B|² + 2a·Re⟨B,N⟩ + a²·|N|²,   E_hr = Σ|A_hr|²,

    a quadratic in a; its positive root is a = (−p + √(p² − |N|²·c)) / |N|², with p = Re⟨B,N⟩ and
    c = |B|² − target·E_hr < 0. (Energy adds only in expectation: p is a random cross term, so
    "a² = (target·E_hr − |B|²) / |N|²" would miss.) When base + a·noise stays in [0,1] that root is
    returned as is. Otherwise the clamp removes part of the noise near black and white, and a is found
    again on the clamped image by bisection, to a relative error of `rtol`.

    A target at or below the base's own hf_ratio gives a = 0 (noise only adds energy, in expectation). A
    target the clamped image cannot reach (clamping caps the energy) gives the largest scale tried."""
    e_hr = _energy(hf_band(hr, cutoff))
    if not math.isfinite(target) or _is_empty(e_hr, hr.shape):
        return 0.0
    bb, nn_ = hf_band(base, cutoff), hf_band(noise, cutoff)
    p, e_n = (bb * nn_.conj()).real.sum().item(), _energy(nn_)
    c = _energy(bb) - target * e_hr
    if c >= 0 or e_n == 0:
        return 0.0
    a = (-p + math.sqrt(p * p - e_n * c)) / e_n
    base, noise = base.double(), noise.double()
    if 0 <= (base + a * noise).min() and (base + a * noise).max() <= 1:
        return a  # nothing clipped: the quadratic's root is exact

    def reached(s):  # whether the clamped image at scale s has at least the target's energy
        return _energy(hf_band((base + s * noise).clamp(0, 1), cutoff)) >= target * e_hr

    lo, hi = 0.0, a
    for _ in range(30):  # clamping took energy away: widen the bracket until the target is inside it
        if reached(hi):
            break
        lo, hi = hi, 2 * hi
    else:
        return hi
    while hi - lo > rtol * hi:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if not reached(mid) else (lo, mid)
    return hi


def bicubic_plus_noise(bic, hr, target, seed, cutoff=0.25):
    """The baseline that cheap "detail" must beat: the bicubic upscale plus white Gaussian noise, scaled so
    that its hf_ratio equals `target` (the student's, per image), clamped to [0,1] and rounded to 8 bits.

        out = round(255 · clamp(bic + a·n, 0, 1)) / 255,   n ~ N(0, I) on (3,H,W), drawn from `seed`,
        a = noise_scale(bic, n, hr, target)

    The noise is white on each RGB channel (a new draw per pixel and channel), so its luma is white too.
    It has as much high-band energy as the student's output, and none of it is the real detail: a
    method whose hf_ratio is high but whose hf_corr, lf_psnr or LPIPS is no better than this row's has
    only added noise. Returns a float64 (3,H,W) tensor of 8-bit values in [0,1]. The rounding adds a
    little energy of its own (≈ 1/12 of a level² per pixel), so the saved image's hf_ratio matches the
    target closely but not to the digit."""
    noise = torch.randn(bic.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    a = noise_scale(bic, noise, hr, target, cutoff)
    return ((bic.double() + a * noise).clamp(0, 1) * 255).round() / 255


def iqa_metrics(device):
    """LPIPS (AlexNet), CLIPIQA, MUSIQ, NIQE and MANIQA from pyiqa, where it is installed and its weights
    load: {name: metric or the reason it is unavailable}. Never substitutes random weights."""
    if importlib.util.find_spec("pyiqa") is None:
        return {n: "pyiqa is not installed (pip install pyiqa)" for n in IQA_METRICS}
    import pyiqa

    from model import hub_reachable

    out = {}
    for name in IQA_METRICS:
        try:
            metric = pyiqa.create_metric(name, device=device, as_loss=False)
            out[name] = metric.eval()
        except Exception as e:  # weights that cannot be downloaded, missing extras, ...
            offline = "" if hub_reachable() else " (no internet here)"
            out[name] = f"its weights could not be loaded{offline}: {str(e).splitlines()[0][:120]}"
    return out


# ---------------------------------------------------------------------------------------------------
# Pairs: HR images and their LR inputs
# ---------------------------------------------------------------------------------------------------


def image_seed(stem, seed):
    """A seed fixed by the image's name (not its position), so adding images changes no other image's LR."""
    return zlib.crc32(stem.encode()) ^ seed


def load_pairs(data, lr_dir, seed, preset="resshift"):
    """[(stem, hr, lr)]: HR cropped top-left to a multiple of the scale; LR from --lr-dir (paired by file
    name) or made by degrade.py with a per-image seed."""
    if data in ("demo", "demo-train"):  # the held-out photos, or (to see what a model memorised) the training ones
        hrs = [(name, img.float() / 255) for name, img in demo_images("val" if data == "demo" else "train")]
    else:
        try:
            folder = find_div2k("val") if data.lower() == "div2k" else Path(data)
        except FileNotFoundError as e:
            raise SystemExit(f"error: {e}") from None
        if not folder.is_dir():
            raise SystemExit(f"error: --data {data}: no such folder (and not 'demo', 'demo-train' or 'DIV2K')")
        hrs = [(p.stem, p) for p in find_images(folder)]
        if not hrs:
            raise SystemExit(f"error: no images found in {folder}")
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


def fmt(v, digits=4):
    if isinstance(v, str) or v is None:
        return "n/a"
    return "inf" if math.isinf(v) else f"{v:.{digits}g}"


NOISY = "bicubic+noise"  # the baseline's label, and its folder under --out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip(),
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--ckpt", required=True, help="the student checkpoint (student.pt)")
    ap.add_argument("--teacher", help="the teacher checkpoint (default: teacher.pt beside --ckpt, if present)")
    ap.add_argument("--data", default="demo", help="HR images: a folder, DIV2K (its validation set), demo (the "
                    "held-out demo photos), or demo-train (the demo's training photos)")
    ap.add_argument("--lr-dir", help="LR inputs paired with the HR images by file name (default: degrade.py)")
    ap.add_argument("--out", default="report", help="report folder")
    ap.add_argument("--teacher-steps", type=int, default=None,
                    help="steps of the teacher's deterministic sampler; None: all T steps of its checkpoint")
    ap.add_argument("--degradation", choices=list(PRESETS), default="resshift", help="when LR is made here")
    ap.add_argument("--tile", type=int, default=256, help="LR tile size for the networks (see sample.py)")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    ap.add_argument("--precision", choices=["auto", "bf16", "fp16", "fp32"], default="auto", help="see sample.py")
    ap.add_argument("--seed", type=int, default=0, help="seed of the LR degradations and of the noise ε")
    args = ap.parse_args(argv)

    device = resolve_device(args.device)
    dtype = resolve_precision(args.precision, device)
    out = Path(args.out)
    try:
        student = load_checkpoint(args.ckpt, kind="student", device=device)
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
    tile, nets = args.tile, {"student": student}
    methods = {"bicubic": bicubic}
    if teacher is not None:
        nets["teacher"] = nets["teacher_1step"] = teacher
        methods["teacher"] = lambda lr: upscale_image(teacher, lr, teacher_steps, seed=args.seed, tile=tile,
                                                      dtype=dtype)
        methods["teacher_1step"] = lambda lr: upscale_image(teacher, lr, 1, seed=args.seed, tile=tile, dtype=dtype)
    methods["student"] = lambda lr: upscale_image(student, lr, 1, seed=args.seed, tile=tile, dtype=dtype)
    latency, peak = run_methods(methods, pairs, out, device)
    # bicubic+noise is made in the metrics phase (it needs the student's saved output), right after bicubic
    shown = ["bicubic", NOISY, *(m for m in methods if m != "bicubic")]

    # 3. Metrics on the saved files, in fp32 (fp64 inside)
    from tqdm import tqdm

    iqa = iqa_metrics(device)
    rows, grid_rows = [], []
    for stem, hr, lr in tqdm(pairs, desc="metrics", unit="img", leave=False):
        saved = {m: load_image(out / m / f"{stem}.png")[0] for m in methods}
        # The bicubic+noise baseline: the saved bicubic image plus white noise with the student's hf_ratio
        # on this image, drawn from a seed fixed by the image's name (so reruns give the same numbers)
        noisy = bicubic_plus_noise(saved["bicubic"], hr, hf_ratio(saved["student"], hr),
                                   seed=image_seed(f"{stem}/{NOISY}", args.seed))
        save_png(noisy, out / NOISY / f"{stem}.png")
        saved[NOISY] = load_image(out / NOISY / f"{stem}.png")[0]
        outputs = {m: saved[m] for m in shown}
        for m, sr in outputs.items():
            row = {"image": stem, "method": m, "psnr": psnr(sr, hr), "ssim": ssim(sr, hr),
                   "lf_psnr": lf_psnr(sr, hr), "hf_ratio": hf_ratio(sr, hr), "hf_corr": hf_corr(sr, hr),
                   "psnr_vs_teacher": psnr(sr, outputs["teacher"]) if m == "student" and teacher else None}
            for name, metric in iqa.items():
                if isinstance(metric, str):
                    row[name] = None
                else:
                    inputs = (sr[None], hr[None]) if name == "lpips" else (sr[None],)  # full- / no-reference
                    with torch.no_grad():
                        row[name] = float(metric(*(x.to(device) for x in inputs)).item())
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
    summary = write_summary(out, rows, shown, nets, peak, iqa, args, teacher_steps, device, dtype, len(pairs),
                            command)
    print(summary)
    print(f"report: {out}/summary.md, metrics.csv, compare.png")
    return 0


# The per-image numbers, in the order of metrics.csv and of the summary table
METRIC_COLUMNS = ["psnr", "ssim", "lf_psnr", "hf_ratio", "hf_corr", "psnr_vs_teacher", *IQA_METRICS, "latency_ms"]


def mean(rows, method, key):
    vals = [r[key] for r in rows if r["method"] == method and r.get(key) is not None]
    return sum(vals) / len(vals) if vals else None


def write_summary(out, rows, methods, nets, peak, iqa, args, teacher_steps, device, dtype, n, command):
    import platform

    table = ["| method | " + " | ".join(METRIC_COLUMNS) + " | parameters | peak memory |",
             "|---" * (len(METRIC_COLUMNS) + 3) + "|"]
    for m in methods:
        params = f"{sum(p.numel() for p in nets[m].net.parameters()) / 1e6:.1f} M" if m in nets else \
            ("n/a" if m == NOISY else "0.0 M")
        cells = [fmt(mean(rows, m, k)) for k in METRIC_COLUMNS] + [params, peak.get(m, "n/a")]
        table.append(f"| {m} | " + " | ".join(cells) + " |")
    speed = ""
    if "teacher" in methods:
        t, s = mean(rows, "teacher", "latency_ms"), mean(rows, "student", "latency_ms")
        speed = f"\nStudent speed-up over the {teacher_steps}-step teacher: {t / s:.1f}× (mean latency).\n"
    unavailable = [f"- {k}: n/a, {v}" for k, v in iqa.items() if isinstance(v, str)]
    versions = []
    for pkg in ("torch", "torchvision", "diffusers", "open_clip", "numpy", "PIL", "pyiqa"):
        try:
            versions.append(f"{pkg} {__import__(pkg).__version__}")
        except ImportError:
            versions.append(f"{pkg} not installed")
    checkpoints = f"student {args.ckpt}"
    if "teacher" in methods:
        checkpoints += f", teacher {args.teacher or Path(args.ckpt).with_name('teacher.pt')}"
    lr_inputs = args.lr_dir or (f"degrade.py, preset {args.degradation}, seed fixed per image name "
                                f"(base seed {args.seed})")
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.machine()
    timing = "CUDA-synchronized" if device.type == "cuda" else "CPU wall time"
    runs = (f"The teacher runs its deterministic sampler for {teacher_steps} steps (teacher_1step: its single "
            f"network call at t = T); the student one step." if "teacher" in methods else
            "No teacher checkpoint: the student runs one step.")
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
- lpips (AlexNet), clipiqa, musiq, niqe, maniqa: pyiqa's definitions, where available.
{chr(10).join(unavailable)}
- latency_ms: one image, after a warm-up image, {timing}; n/a for bicubic+noise (a reference, not a method).
  {runs}
  Networks run in tiles of at most {args.tile} LR pixels.

## Set-up
- checkpoints: {checkpoints}
- LR inputs: {lr_inputs}
- device: {device_name} ({device}), {str(dtype).removeprefix('torch.')}
- versions: Python {platform.python_version()}, {', '.join(versions)}
"""
    (out / "summary.md").write_text(text)
    return "\n".join(table) + "\n" + speed + ("\n".join(unavailable) + "\n" if unavailable else "")


if __name__ == "__main__":
    sys.exit(main())
