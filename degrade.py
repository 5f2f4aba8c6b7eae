"""
degrade.py: realistic low-resolution inputs from high-resolution photos.

VPD-SR, like every real-world super-resolution method since Real-ESRGAN (Wang et al., 2021), never
trains on real LR/HR pairs. It takes a high-resolution (HR) crop and synthesizes its low-resolution (LR)
input on the fly with the *second-order degradation*: blur, resize, noise and JPEG, applied twice, then a
final resize with ringing (sinc) and JPEG. The mixture is wide on purpose, so that a network trained on
it handles the unknown degradations of real photos.

See what the networks will be trained on (8 random LR versions of each photo, and a preview grid):

    python degrade.py photo.png -o results/degrade
    python degrade.py --demo -o results/degrade --degradation realesrgan --n 4

In Python:

    hr_target, lr = degrade(hr, PRESETS["resshift"], torch.Generator().manual_seed(0))

The file has two parts, and a command line to look at the result:
  1. Settings: `Stage` and `DegradationConfig`, with four presets, lightest first: `bicubic` (the classic
     benchmark task), `light` (one mild stage: a photo scaled down and saved as JPEG), `resshift` (the
     default, VPD-SR's lineage) and `realesrgan`.
  2. The pipeline: blur kernels, noise, JPEG, resize, and `degrade()`, which chains them. It works on a
     batch on any device (CPU or CUDA): random parameters are drawn per sample on the CPU, the image work
     runs batched on the batch's device.
The photos themselves (image files, the demo photos, DIV2K, the crops of a training run) are data.py's.

The degradation follows Real-ESRGAN's `feed_data` (basicsr/realesrgan) step for step; like it, the
resize scale, resize mode and noise type are drawn once per batch (a batch must keep one spatial size),
while blur kernels, noise levels, gray/colour noise and JPEG qualities are drawn per sample.
"""

import argparse
import math
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from data import build_dataset, demo_images, load_image, save_png

# torchvision is imported lazily where used: it makes `import degrade` ~2 s slower in every DataLoader
# worker and test, and only the JPEG, grayscale and grid helpers need it.

# ---------------------------------------------------------------------------------------------------
# 1. Settings
# ---------------------------------------------------------------------------------------------------

KERNEL_FAMILIES = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")


def odd(lo, hi):
    """The odd kernel sizes lo, lo+2, ..., hi."""
    return tuple(range(lo, hi + 1, 2))


@dataclass(frozen=True)
class Stage:
    """One degradation stage: blur -> resize -> noise (-> JPEG). Ranges are (low, high), drawn uniformly."""

    kernel_sizes: tuple  # odd blur-kernel sizes, one drawn per sample
    kernel_prob: tuple  # probabilities of the six KERNEL_FAMILIES
    blur_sigma: tuple  # Gaussian widths σx, σy (pixels)
    betag_range: tuple  # shape β of generalized Gaussians
    betap_range: tuple  # shape β of plateau kernels
    sinc_prob: float  # chance that a 2-D sinc (ringing) kernel replaces the blur kernel
    resize_prob: tuple  # chances of (up, down, keep)
    resize_range: tuple  # scale factor range
    gaussian_noise_prob: float  # else Poisson noise
    noise_range: tuple  # Gaussian σ, in 0-255 units
    poisson_scale_range: tuple
    gray_noise_prob: float  # chance that R, G and B receive the same noise
    jpeg_range: tuple  # JPEG quality; stage 2's range is used by the final JPEG
    noise_prob: float = 1.0  # chance that the stage adds noise at all (drawn per batch)


# The ResShift / SinSR parameters (realsr_swinunet_realesrgan256.yaml), the lineage VPD-SR distills from.
STAGE1 = Stage(
    kernel_sizes=odd(3, 19), kernel_prob=(0.45, 0.25, 0.12, 0.03, 0.12, 0.03), blur_sigma=(0.2, 3.0),
    betag_range=(0.5, 4.0), betap_range=(1.0, 2.0), sinc_prob=0.1,
    resize_prob=(0.2, 0.7, 0.1), resize_range=(0.15, 1.5),
    gaussian_noise_prob=0.5, noise_range=(1.0, 30.0), poisson_scale_range=(0.05, 3.0), gray_noise_prob=0.4,
    jpeg_range=(30, 95),
)
STAGE2 = Stage(
    kernel_sizes=odd(3, 13), kernel_prob=(0.45, 0.25, 0.12, 0.03, 0.12, 0.03), blur_sigma=(0.2, 1.5),
    betag_range=(0.5, 4.0), betap_range=(1.0, 2.0), sinc_prob=0.1,
    resize_prob=(0.3, 0.4, 0.3), resize_range=(0.3, 1.2),
    gaussian_noise_prob=0.5, noise_range=(1.0, 25.0), poisson_scale_range=(0.05, 2.5), gray_noise_prob=0.4,
    jpeg_range=(30, 95),
)


# The pipelines a config can run (degrade() has each step by step):
#   second-order  Real-ESRGAN's: stage 1, stage 2 (sometimes), the final resize + sinc + JPEG
#   one-stage     stage 1 only, its resize going straight to the LR size: blur -> resize -> noise -> JPEG
#   bicubic       the classic ×4 task of the SR benchmarks: an antialiased bicubic downscale, nothing else
PIPELINES = ("second-order", "one-stage", "bicubic")


@dataclass(frozen=True)
class DegradationConfig:
    pipeline: str = "second-order"  # one of PIPELINES
    scale: int = 4
    stage1: Stage = STAGE1
    stage2: Stage = STAGE2
    second_order_prob: float = 0.5  # chance that stage 2 runs at all
    second_blur_prob: float = 0.8  # chance that stage 2 blurs, when it runs
    final_sinc_prob: float = 0.8  # else the final "filter" is a delta (no-op)
    final_sinc_sizes: tuple = odd(3, 13)
    final_order_prob: float = 0.5  # chance of resize -> sinc -> JPEG, else JPEG -> resize -> sinc
    resize_modes: tuple = ("area", "bilinear", "bicubic")  # drawn uniformly at each resize
    antialias: bool = False  # low-pass before a bilinear / bicubic downscale (as image editors and phones do)
    usm_sharpen_target: bool = False  # Real-ESRGAN trains towards an unsharp-masked HR image

    @classmethod
    def from_dict(cls, d):
        """Inverse of dataclasses.asdict (lists from JSON become tuples again)."""
        tup = lambda v: tuple(v) if isinstance(v, list) else v
        stages = {k: Stage(**{n: tup(v) for n, v in d[k].items()}) for k in ("stage1", "stage2")}
        return cls(**{k: tup(v) for k, v in d.items() if k not in stages}, **stages)


# `light`: what a user's photos usually went through: a camera or a web page scaled them down, and saved them
# as JPEG. One stage, every range mild:
#   blur         a Gaussian (isotropic 70 %, anisotropic 30 %), σ in [0.2, 1.5] HR pixels, 5×5 to 11×11: a lens
#                slightly soft or slightly out of focus; no sinc, no plateau or generalized kernels
#   resize       straight to the LR size, area / antialiased bilinear / antialiased bicubic: how software
#                scales photos down (a naive ×4 bicubic without a low-pass aliases, which none of it does)
#   noise        40 % of the batches: Gaussian, σ in [1, 6] (0-255 units), gray 40 % of the time: sensor
#                noise that survived the camera's own denoising
#   JPEG         quality in [60, 95]: from a web upload to a phone's own files
LIGHT = Stage(
    kernel_sizes=odd(5, 11), kernel_prob=(0.7, 0.3, 0.0, 0.0, 0.0, 0.0), blur_sigma=(0.2, 1.5),
    betag_range=(0.5, 4.0), betap_range=(1.0, 2.0), sinc_prob=0.0,
    resize_prob=(0.0, 0.0, 1.0), resize_range=(1.0, 1.0),
    gaussian_noise_prob=1.0, noise_range=(1.0, 6.0), poisson_scale_range=(0.05, 3.0), gray_noise_prob=0.4,
    jpeg_range=(60, 95), noise_prob=0.4,
)

PRESETS = {
    # The classic ×4 task (bicubic downscale with antialiasing, as MATLAB's imresize, then 8 bits): what
    # Set5 / DIV2K "bicubic" benchmarks mean, and the easiest task to learn.
    "bicubic": DegradationConfig(pipeline="bicubic"),
    # (one-stage runs stage 1 only; stage 2 and the final sinc are set to LIGHT and a 1×1 delta so that
    # the kernels degrade() draws for them, unused, stay no larger than stage 1's)
    "light": DegradationConfig(pipeline="one-stage", stage1=LIGHT, stage2=LIGHT, final_sinc_sizes=(1,),
                               antialias=True),
    # The ResShift / SinSR set, VPD-SR's lineage: heavy, for GPU runs on DIV2K.
    "resshift": DegradationConfig(),
    # Official Real-ESRGAN: the second stage always runs, every kernel size is drawn from 7-21,
    # and the HR target is USM-sharpened.
    "realesrgan": DegradationConfig(
        stage1=replace(STAGE1, kernel_sizes=odd(7, 21)), stage2=replace(STAGE2, kernel_sizes=odd(7, 21)),
        second_order_prob=1.0, final_sinc_sizes=odd(7, 21), usm_sharpen_target=True,
    ),
}

# ---------------------------------------------------------------------------------------------------
# 2. The pipeline
# ---------------------------------------------------------------------------------------------------


def uniform(lo, hi, n, g):
    return lo + (hi - lo) * torch.rand(n, generator=g, dtype=torch.float64)


def coin(p, g):
    """One batch-level Bernoulli(p) draw."""
    return torch.rand((), generator=g).item() < p


def pick(options, g, probs=None):
    """One batch-level draw from `options` (uniform unless `probs` are given)."""
    probs = torch.tensor(probs if probs is not None else [1.0] * len(options), dtype=torch.float64)
    return options[torch.multinomial(probs, 1, generator=g).item()]


def centered_grid(pad_to):
    """Integer pixel offsets (x, y) from the centre of a pad_to × pad_to kernel; x runs along columns."""
    r = pad_to // 2
    ax = torch.arange(-r, r + 1, dtype=torch.float64)
    y, x = torch.meshgrid(ax, ax, indexing="ij")
    return x, y


def window(size, pad_to):
    """(B, pad_to, pad_to) mask of the size × size centre window: a size-k kernel zero-padded to pad_to."""
    x, y = centered_grid(pad_to)
    r = (torch.as_tensor(size, dtype=torch.float64) // 2).view(-1, 1, 1)
    return (x.abs() <= r) & (y.abs() <= r)


def anisotropic_kernels(size, sigma_x, sigma_y, theta, beta, plateau, pad_to):
    """Gaussian, generalized Gaussian and plateau blur kernels, one per sample (all arguments (B,)).

    With Σ = R(θ)·diag(σx², σy²)·R(θ)ᵀ and Q(x) = xᵀΣ⁻¹x over integer offsets x from the centre:
        Gaussian               k(x) ∝ exp(−½·Q(x))           (β = 1)
        generalized Gaussian   k(x) ∝ exp(−½·Q(x)^β)
        plateau                k(x) ∝ 1 / (1 + Q(x)^β)
    Isotropic kernels are the case σy = σx, θ = 0. Each kernel is zero outside its size × size window
    and sums to 1.
    """
    x, y = centered_grid(pad_to)
    col = lambda v: torch.as_tensor(v, dtype=torch.float64).view(-1, 1, 1)
    c, s = torch.cos(col(theta)), torch.sin(col(theta))
    # Rᵀx rotates the offsets into the kernel's principal axes, where Σ⁻¹ is diagonal.
    u, v = c * x + s * y, -s * x + c * y
    q = (u / col(sigma_x)) ** 2 + (v / col(sigma_y)) ** 2
    qb = q ** col(beta)
    k = torch.where(col(plateau).bool(), 1 / (1 + qb), torch.exp(-0.5 * qb))
    k = k * window(size, pad_to)
    return k / k.sum((1, 2), keepdim=True)


def sinc_kernels(size, cutoff, pad_to):
    """2-D circular low-pass ("sinc") kernels, the ringing / overshoot artifact of real upscalers.

        k(x) ∝ ω_c · J₁(ω_c·|x|) / (2π·|x|),    k(0) = ω_c² / (4π)    (its limit at |x| → 0)

    with J₁ the Bessel function of the first kind and ω_c the cutoff (radians per pixel).
    """
    x, y = centered_grid(pad_to)
    wc = torch.as_tensor(cutoff, dtype=torch.float64).view(-1, 1, 1)
    r = torch.sqrt(x**2 + y**2)
    safe_r = torch.where(r == 0, torch.ones_like(r), r)
    k = torch.where(r == 0, wc**2 / (4 * math.pi), wc * torch.special.bessel_j1(wc * safe_r) / (2 * math.pi * safe_r))
    k = k * window(size, pad_to)
    return k / k.sum((1, 2), keepdim=True)


def random_blur_kernels(n, st: Stage, g, pad_to):
    """n blur kernels for one stage, each from a random family with random parameters (Real-ESRGAN's
    random_mixed_kernels), or, with probability st.sinc_prob, a sinc kernel."""
    size = torch.tensor(st.kernel_sizes)[torch.randint(len(st.kernel_sizes), (n,), generator=g)]
    family = [KERNEL_FAMILIES[i] for i in torch.multinomial(torch.tensor(st.kernel_prob), n, True, generator=g)]
    iso = torch.tensor(["iso" in f and "aniso" not in f for f in family])
    plateau = torch.tensor([f.startswith("plateau") for f in family])
    generalized = torch.tensor([f.startswith("generalized") for f in family])
    sigma_x = uniform(*st.blur_sigma, n, g)
    sigma_y = torch.where(iso, sigma_x, uniform(*st.blur_sigma, n, g))
    theta = torch.where(iso, 0.0, uniform(-math.pi, math.pi, n, g))
    # β: half the time uniform in [β_lo, 1], else in [1, β_hi] (so that β < 1 and β > 1 are equally common)
    low_half = torch.rand(n, generator=g) < 0.5
    beta_g = torch.where(low_half, uniform(st.betag_range[0], 1, n, g), uniform(1, st.betag_range[1], n, g))
    beta_p = torch.where(low_half, uniform(st.betap_range[0], 1, n, g), uniform(1, st.betap_range[1], n, g))
    beta = torch.where(plateau, beta_p, torch.where(generalized, beta_g, 1.0))
    blur = anisotropic_kernels(size, sigma_x, sigma_y, theta, beta, plateau, pad_to)
    # The sinc cutoff is kept above π/3 for small kernels, whose truncation would otherwise dominate.
    cutoff = torch.where(size < 13, uniform(math.pi / 3, math.pi, n, g), uniform(math.pi / 5, math.pi, n, g))
    use_sinc = torch.rand(n, generator=g) < st.sinc_prob
    return torch.where(use_sinc.view(-1, 1, 1), sinc_kernels(size, cutoff, pad_to), blur).float()


def final_sinc_kernels(n, cfg: DegradationConfig, g, pad_to):
    """The final filter: a sinc kernel (cutoff uniform in [π/3, π]) with probability final_sinc_prob,
    else a delta kernel, which leaves the image unchanged."""
    size = torch.tensor(cfg.final_sinc_sizes)[torch.randint(len(cfg.final_sinc_sizes), (n,), generator=g)]
    sinc = sinc_kernels(size, uniform(math.pi / 3, math.pi, n, g), pad_to)
    delta = window(1, pad_to).expand(n, -1, -1).double()
    use_sinc = torch.rand(n, generator=g) < cfg.final_sinc_prob
    return torch.where(use_sinc.view(-1, 1, 1), sinc, delta).float()


def filter2d(img, kernels):
    """Blur each sample of img (B,C,H,W) with its own kernel (B,k,k), as one grouped convolution.

    Borders are reflect-padded, as in Real-ESRGAN; an image too small to reflect (side ≤ k/2, only in
    tiny tests) is replicate-padded instead. All kernels here are point-symmetric, so the convolution's
    missing flip (conv2d is a correlation) changes nothing. (The same product in the Fourier domain was
    measured slower on a CPU, 1.3-5× for batches of 64²-256² crops and 11-21 pixel kernels: not used.)
    """
    b, c, h, w = img.shape
    p = kernels.shape[-1] // 2
    mode = "reflect" if p < min(h, w) else "replicate"
    x = F.pad(img, (p, p, p, p), mode=mode).reshape(1, b * c, h + 2 * p, w + 2 * p)
    weight = kernels.to(img).repeat_interleave(c, dim=0).unsqueeze(1)  # sample i's kernel for its c channels
    return F.conv2d(x, weight, groups=b * c).view(b, c, h, w)


def gaussian_blur(img, size, sigma):
    """Blur with a fixed isotropic Gaussian, as two 1-D passes (a k×k pass costs k/2 times more)."""
    ax = torch.arange(size, dtype=torch.float64) - size // 2
    g1 = torch.exp(-(ax**2) / (2 * sigma**2))
    g1 = (g1 / g1.sum()).to(img)
    (b, c, h, w), p = img.shape, size // 2
    mode = "reflect" if p < min(h, w) else "replicate"
    # All b·c channels as groups of one image: much faster on the CPU than a batch of b images.
    x = F.pad(img, (p, p, p, p), mode=mode).view(1, b * c, h + 2 * p, w + 2 * p)
    x = F.conv2d(x, g1.view(1, 1, 1, -1).expand(b * c, 1, 1, size), groups=b * c)  # along rows
    x = F.conv2d(x, g1.view(1, 1, -1, 1).expand(b * c, 1, size, 1), groups=b * c)  # along columns
    return x.view(b, c, h, w)


def usm_sharpen(img, weight=0.5, radius=50, threshold=10):
    """Unsharp masking, as Real-ESRGAN sharpens its HR targets: add weight·(img − blur(img)) where the
    residual exceeds `threshold` (0-255 units), blending softly at the mask's edges."""
    size = radius + 1 if radius % 2 == 0 else radius
    sigma = 0.3 * ((size - 1) * 0.5 - 1) + 0.8  # OpenCV's default σ for this kernel size
    residual = img - gaussian_blur(img, size, sigma)
    soft_mask = gaussian_blur((residual.abs() * 255 > threshold).to(img.dtype), size, sigma)
    sharp = (img + weight * residual).clamp(0, 1)
    return soft_mask * sharp + (1 - soft_mask) * img


def resize(img, size, mode, antialias=False):
    """Resize; by default without antialiasing: the aliasing of a naive downscale is one of the degradations.
    ("area" averages the pixels each output pixel covers: it needs no antialiasing.)"""
    size = (max(1, int(size[0])), max(1, int(size[1])))
    if antialias and mode in ("bilinear", "bicubic"):
        return F.interpolate(img, size=size, mode=mode, antialias=True, align_corners=False)
    return F.interpolate(img, size=size, mode=mode)


def random_scale(st: Stage, g):
    """Scale factor for a stage's resize: up in [1, hi], down in [lo, 1], or keep (1)."""
    direction = pick(("up", "down", "keep"), g, st.resize_prob)
    if direction == "up":
        return uniform(1.0, st.resize_range[1], 1, g).item()
    if direction == "down":
        return uniform(st.resize_range[0], 1.0, 1, g).item()
    return 1.0


def gaussian_noise(img, sigma, dg):
    """Additive white Gaussian noise with standard deviation sigma (0-255 units, broadcast per sample)."""
    return torch.randn(img.shape, generator=dg, device=img.device, dtype=img.dtype) * (sigma / 255)


def poisson_noise(img, scale, dg):
    """Shot noise times `scale`: quantize to 8 bits, let v = the number of distinct values in each sample
    rounded up to a power of two, and return (Poisson(img·v)/v − img)·scale."""
    b = img.shape[0]
    q = (img * 255).round().clamp(0, 255)
    # Count distinct 8-bit values per sample by marking each value seen (no host sync, unlike torch.unique
    # or a CUDA bincount, which both read sizes back to the CPU).
    seen = torch.zeros((b, 256), device=img.device).scatter_(1, q.long().reshape(b, -1), 1.0)
    distinct = seen.sum(1)
    v = (2 ** torch.ceil(torch.log2(distinct.to(img.dtype)))).view(b, 1, 1, 1)
    q = q / 255
    return (torch.poisson(q * v, generator=dg) / v - q) * scale


def add_noise(img, st: Stage, g, dg):
    """A stage's noise: Gaussian or Poisson for the whole batch; per sample a level, and whether it is
    gray (computed on the luma, the same for R, G and B) or colour (independent per channel).
    g (CPU) draws the parameters; dg, on img's device, draws the noise itself."""
    from torchvision.transforms.functional import rgb_to_grayscale

    if st.noise_prob < 1 and not coin(st.noise_prob, g):  # (drawn only when it can fail: older presets'
        return img  # random streams stay as they were)
    b = img.shape[0]
    gray = torch.rand(b, generator=g) < st.gray_noise_prob
    if coin(st.gaussian_noise_prob, g):
        noise_fn, level = gaussian_noise, uniform(*st.noise_range, b, g)
    else:
        noise_fn, level = poisson_noise, uniform(*st.poisson_scale_range, b, g)
    level = level.to(device=img.device, dtype=img.dtype).view(b, 1, 1, 1)
    noise = torch.empty_like(img)
    # The masks live on the CPU, so splitting the batch costs no device sync.
    for mask, gray_case in ((~gray, False), (gray, True)):
        if mask.any():
            i = mask.nonzero().flatten().to(img.device)
            x = rgb_to_grayscale(img[i]) if gray_case else img[i]
            noise[i] = noise_fn(x, level[i], dg).expand(-1, 3, -1, -1)
    return (img + noise).clamp(0, 1)


def jpeg(img, quality):
    """JPEG round trip with torchvision (libjpeg on the CPU, nvjpeg on CUDA), one quality per sample."""
    from torchvision.io import decode_jpeg, encode_jpeg

    x = (img.clamp(0, 1) * 255).round().to(torch.uint8)
    streams = [encode_jpeg(x[i], quality=int(q)) for i, q in enumerate(quality.tolist())]
    # decode_jpeg takes bitstreams on the CPU only, whatever device it decodes on.
    decoded = decode_jpeg([s.cpu() for s in streams], device=img.device)
    return torch.stack(decoded).to(img.dtype) / 255


def random_jpeg(img, jpeg_range, g):
    quality = torch.randint(int(jpeg_range[0]), int(jpeg_range[1]) + 1, (img.shape[0],), generator=g)
    return jpeg(img, quality)


@torch.no_grad()
def degrade(hr, cfg: DegradationConfig = PRESETS["resshift"], generator=None):
    """Degrade a batch of HR images (B,3,H,W) in [0,1], on hr's device, by cfg's pipeline (PIPELINES).

    Returns (hr_target, lr): the HR batch cropped (top-left) to a multiple of the scale (and USM-sharpened
    if the config says so), and the LR batch, (B,3,H//scale,W//scale), 8-bit-quantized, in [0,1].
    `generator`, a CPU torch.Generator, makes the result reproducible.
    """
    # Without a generator, draw its seed from torch's global RNG, so torch.manual_seed still applies.
    g = generator if generator is not None else torch.Generator().manual_seed(int(torch.randint(2**62, ())))
    if hr.device.type == "cpu":
        dg = g
    else:  # noise is drawn on the device, from a generator seeded by g
        dg = torch.Generator(hr.device).manual_seed(int(torch.randint(2**62, (), generator=g)))
    scale, (b, _, h, w) = cfg.scale, hr.shape
    H, W = h // scale * scale, w // scale * scale
    if H == 0 or W == 0:
        raise ValueError(f"image of {h}x{w} is smaller than the scale factor {scale}")
    hr = hr[..., :H, :W]
    if cfg.usm_sharpen_target:
        hr = usm_sharpen(hr)
    if cfg.pipeline not in PIPELINES:
        raise ValueError(f"unknown degradation pipeline '{cfg.pipeline}' (choose from {', '.join(PIPELINES)})")
    if cfg.pipeline == "bicubic":  # the classic task: LR = bicubic↓4 with antialiasing, 8 bits
        return hr, quantize(resize(hr, (H // scale, W // scale), "bicubic", antialias=True))
    # Per-sample kernels, all zero-padded to the largest size the config allows, so that one grouped
    # convolution filters the whole batch.
    pad_to = max(cfg.stage1.kernel_sizes + cfg.stage2.kernel_sizes + cfg.final_sinc_sizes)
    kernel1 = random_blur_kernels(b, cfg.stage1, g, pad_to)
    kernel2 = random_blur_kernels(b, cfg.stage2, g, pad_to)
    sinc = final_sinc_kernels(b, cfg, g, pad_to)

    if cfg.pipeline == "one-stage":  # blur -> resize to the LR size -> noise -> JPEG
        out = filter2d(hr, kernel1)
        out = resize(out, (H // scale, W // scale), pick(cfg.resize_modes, g), cfg.antialias)
        out = add_noise(out, cfg.stage1, g, dg)
        return hr, quantize(random_jpeg(out, cfg.stage1.jpeg_range, g))

    # Stage 1: blur -> resize (up / down / keep) -> noise -> JPEG
    out = filter2d(hr, kernel1)
    scale1 = random_scale(cfg.stage1, g)
    out = resize(out, (H * scale1, W * scale1), pick(cfg.resize_modes, g))
    out = add_noise(out, cfg.stage1, g, dg)
    out = random_jpeg(out, cfg.stage1.jpeg_range, g)

    # Stage 2 (sometimes): blur (sometimes) -> resize around the LR size -> noise
    if coin(cfg.second_order_prob, g):
        if coin(cfg.second_blur_prob, g):
            out = filter2d(out, kernel2)
        scale2 = random_scale(cfg.stage2, g)
        out = resize(out, (H / scale * scale2, W / scale * scale2), pick(cfg.resize_modes, g))
        out = add_noise(out, cfg.stage2, g, dg)

    # Final step, in one of two orders: resize to the LR size -> sinc -> JPEG, or JPEG -> resize -> sinc
    mode = pick(cfg.resize_modes, g)
    if coin(cfg.final_order_prob, g):
        out = filter2d(resize(out, (H // scale, W // scale), mode), sinc)
        out = random_jpeg(out, cfg.stage2.jpeg_range, g)
    else:
        out = random_jpeg(out, cfg.stage2.jpeg_range, g)
        out = filter2d(resize(out, (H // scale, W // scale), mode), sinc)

    return hr, quantize(out)


def quantize(img):
    """What a real 8-bit LR image can hold."""
    return (img.clamp(0, 1) * 255).round() / 255


# ---------------------------------------------------------------------------------------------------
# Command line: see the degradations
# ---------------------------------------------------------------------------------------------------


def preview(hr, lrs, scale):
    """A grid: the HR image, then each LR image upscaled with nearest-neighbour to the HR size."""
    from torchvision.utils import make_grid

    tiles = [hr] + [lr.repeat_interleave(scale, -2).repeat_interleave(scale, -1) for lr in lrs]
    return make_grid(tiles, nrow=math.ceil(math.sqrt(len(tiles))), padding=4, pad_value=1.0)


def benchmark(device, batch_size, patch_size, iters, presets):
    """Time degrade() on batches of real-photo crops: the number that must stay small beside a training step."""
    import time

    torch.manual_seed(0)
    ds = build_dataset("demo", patch_size=patch_size)
    hr = torch.stack([ds[i % len(ds)] for i in range(batch_size)]).to(device)
    sync = torch.cuda.synchronize if hr.device.type == "cuda" else (lambda: None)
    print(f"degrade(): batch {batch_size} x 3 x {patch_size} x {patch_size} on {hr.device} "
          f"({torch.cuda.get_device_name() if hr.device.type == 'cuda' else f'{torch.get_num_threads()} threads'}), "
          f"torch {torch.__version__}; {iters} batches after 3 warm-up batches (branches vary per batch)")
    print(f"{'preset':<12}{'mean ms':>10}{'median ms':>11}{'max ms':>9}{'img/s':>9}")
    for name in presets:
        g = torch.Generator().manual_seed(0)
        for _ in range(3):
            degrade(hr, PRESETS[name], g)
        times = []
        for _ in range(iters):
            sync()
            t0 = time.perf_counter()
            degrade(hr, PRESETS[name], g)
            sync()
            times.append(1000 * (time.perf_counter() - t0))
        t = torch.tensor(times)
        print(f"{name:<12}{t.mean():>10.1f}{t.median():>11.1f}{t.max():>9.1f}{1000 * batch_size / t.mean():>9.0f}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("images", nargs="*", metavar="IMG", help="image files to degrade")
    ap.add_argument("--demo", action="store_true", help="also degrade the held-out scikit-image demo photos")
    ap.add_argument("-o", "--out", default="results/degrade", help="output folder (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0, help="random seed; each image uses it afresh (default: 0)")
    ap.add_argument("--n", type=int, default=8, help="LR versions per image (default: %(default)s)")
    ap.add_argument("--scale", type=int, default=4, help="downscaling factor (default: %(default)s)")
    ap.add_argument("--degradation", choices=sorted(PRESETS), default="resshift", help="degradation parameters")
    ap.add_argument("--benchmark", action="store_true",
                    help="time degrade() on a batch of demo crops (every preset) instead of writing images")
    ap.add_argument("--batch-size", type=int, default=32, help="--benchmark batch size (default: %(default)s)")
    ap.add_argument("--patch-size", type=int, default=256, help="--benchmark HR crop size (default: %(default)s)")
    ap.add_argument("--iters", type=int, default=20, help="--benchmark timed batches (default: %(default)s)")
    ap.add_argument("--device", default="auto", help="--benchmark device: auto, cpu, cuda (default: %(default)s)")
    args = ap.parse_args(argv)
    if args.benchmark:
        device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
        benchmark(device, args.batch_size, args.patch_size, args.iters, sorted(PRESETS))
        return 0
    if not args.images and not args.demo:
        ap.error("give image files, or --demo")

    cfg = replace(PRESETS[args.degradation], scale=args.scale)
    out = Path(args.out)
    inputs = [(Path(p).stem, p) for p in args.images]
    inputs += [(name, img.float() / 255) for name, img in demo_images("val")] if args.demo else []
    failed = []
    for stem, src in inputs:
        try:
            hr = load_image(src)[0] if isinstance(src, str) else src
            if min(hr.shape[-2:]) < args.scale:
                raise ValueError(f"{src}: {hr.shape[-1]}x{hr.shape[-2]} is smaller than the scale {args.scale}")
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            failed.append(src)
            continue
        g = torch.Generator().manual_seed(args.seed)
        # One degrade() call per version: resize and noise type are drawn per batch, and each version
        # should show its own.
        pairs = [degrade(hr[None], cfg, g) for _ in range(args.n)]
        lrs = [lr[0] for _, lr in pairs]
        for k, lr in enumerate(lrs):
            save_png(lr, out / f"{stem}_lr{k}.png")
        save_png(preview(pairs[0][0][0], lrs, args.scale), out / f"{stem}_preview.png")
        print(f"{stem}: {hr.shape[-1]}x{hr.shape[-2]} -> {args.n} x {lrs[0].shape[-1]}x{lrs[0].shape[-2]}, "
              f"preview {out / f'{stem}_preview.png'}")
    if failed:
        print(f"{len(failed)} of {len(inputs)} images failed: {', '.join(map(str, failed))}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
