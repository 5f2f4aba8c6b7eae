"""
degrade.py: realistic low-resolution inputs from high-resolution photos.

VPD-SR, like every real-world super-resolution method since Real-ESRGAN (Wang et al., 2021), never trains on
real LR/HR pairs: it takes a high-resolution (HR) crop and synthesizes its low-resolution (LR) input, SCALE = 4
times smaller, on the fly. The three DEGRADATIONS, lightest first:
    bicubic    the classic benchmark task: an antialiased bicubic downscale, nothing else
    light      one mild stage: a photo blurred a little, scaled down, sometimes noisy, saved as JPEG
    resshift   Real-ESRGAN's second-order degradation, with the parameters of ResShift / SinSR (VPD-SR's lineage):
                 stage 1   blur -> resize (up, down or keep) -> noise -> JPEG
                 stage 2   (half the time) blur (80 % of the time) -> resize around the LR size -> noise
                 final     resize to the LR size + sinc filter (ringing, 80 % of the time), and JPEG, in either order
               Stage 2 has no JPEG of its own: the final JPEG draws its quality from stage 2's range.
The second-order mixture is wide on purpose, so that a network trained on it handles the unknown degradations of
real photos. It follows Real-ESRGAN's `feed_data` (basicsr/realesrgan) step for step, with ResShift's one
addition (stage 2 may be skipped): every branch, the resize scales and modes and the noise type are drawn once
per batch (a batch must keep one spatial size); blur kernels, noise levels, gray/colour noise and JPEG qualities
per sample. Random parameters are drawn on the CPU; the image work runs batched on the batch's device.

    hr_target, lr = degrade(hr, DEGRADATIONS["resshift"], torch.Generator().manual_seed(0))
    python tools/degradations.py photo.png -o results/degrade   # see them: LR versions and a preview grid
"""

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from data import to_uint8

# (torchvision is imported where used: importing it costs every DataLoader worker and test ~2 s.)

SCALE = 4  # the super-resolution factor of the whole project: LR = HR / SCALE along each side

# --- 1. Settings

# The blur kernels (anisotropic_kernels has their formulas), in the order of DegradationStage.kernel_prob
KERNEL_FAMILIES = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")


def odd(lo, hi):
    """The odd kernel sizes lo, lo+2, ..., hi."""
    return tuple(range(lo, hi + 1, 2))


@dataclass(frozen=True)
class DegradationStage:
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


# The ResShift / SinSR parameters (realsr_swinunet_realesrgan256.yaml), the lineage VPD-SR distills from;
# stage 2 draws from the same families, with milder ranges.
STAGE1 = DegradationStage(kernel_sizes=odd(3, 19), kernel_prob=(0.45, 0.25, 0.12, 0.03, 0.12, 0.03),
                          blur_sigma=(0.2, 3.0), betag_range=(0.5, 4.0), betap_range=(1.0, 2.0), sinc_prob=0.1,
                          resize_prob=(0.2, 0.7, 0.1), resize_range=(0.15, 1.5), gaussian_noise_prob=0.5,
                          noise_range=(1.0, 30.0), poisson_scale_range=(0.05, 3.0), gray_noise_prob=0.4,
                          jpeg_range=(30, 95))
STAGE2 = replace(STAGE1, kernel_sizes=odd(3, 13), blur_sigma=(0.2, 1.5), resize_prob=(0.3, 0.4, 0.3),
                 resize_range=(0.3, 1.2), noise_range=(1.0, 25.0), poisson_scale_range=(0.05, 2.5))

# What degrade() runs: second-order (Real-ESRGAN's), one-stage (stage 1 only, its resize going straight to
# the LR size: blur -> resize -> noise -> JPEG) or bicubic (the benchmarks' clean downscale).
PIPELINES = ("second-order", "one-stage", "bicubic")


@dataclass(frozen=True)
class DegradationConfig:
    pipeline: str = "second-order"  # one of PIPELINES
    stage1: DegradationStage = STAGE1
    stage2: DegradationStage = STAGE2  # (this and the next five: second-order only)
    second_order_prob: float = 0.5  # chance that stage 2 runs at all
    second_blur_prob: float = 0.8  # chance that stage 2 blurs, when it runs
    final_sinc_prob: float = 0.8  # else the final "filter" is a delta (no-op)
    final_sinc_sizes: tuple = odd(3, 13)
    final_order_prob: float = 0.5  # chance of resize -> sinc -> JPEG, else JPEG -> resize -> sinc
    resize_modes: tuple = ("area", "bilinear", "bicubic")  # drawn uniformly at each resize
    # one-stage only: low-pass before a bilinear / bicubic downscale, as image editors and phones do
    # (Real-ESRGAN's resizes never do: the aliasing of a naive downscale is one of its degradations)
    antialias: bool = False


# `light`: what a user's photos usually went through: a camera or a web page scaled them down, and saved them
# as JPEG. One stage, every range mild:
#   blur     a Gaussian (isotropic 70 %, anisotropic 30 %), σ in [0.2, 1.5] HR pixels, 5×5 to 11×11: a lens
#            slightly soft or slightly out of focus; no sinc, no plateau or generalized kernels
#   resize   straight to the LR size (stage 1's resize settings are unused), area / antialiased bilinear /
#            antialiased bicubic: how software scales photos down (a naive ×4 bicubic aliases; none of it does that)
#   noise    40 % of the batches: Gaussian, σ in [1, 6] (0-255 units), gray 40 % of the time: sensor noise
#            that survived the camera's own denoising
#   JPEG     quality in [60, 95]: from a web upload to a phone's own files
LIGHT = replace(STAGE1, kernel_sizes=odd(5, 11), kernel_prob=(0.7, 0.3, 0.0, 0.0, 0.0, 0.0), blur_sigma=(0.2, 1.5),
                sinc_prob=0.0, gaussian_noise_prob=1.0, noise_range=(1.0, 6.0), jpeg_range=(60, 95), noise_prob=0.4)

DEGRADATIONS = {
    "bicubic": DegradationConfig(pipeline="bicubic"),  # as MATLAB's imresize, then 8 bits: Set5 / DIV2K "bicubic"
    "light": DegradationConfig(pipeline="one-stage", stage1=LIGHT, antialias=True),
    "resshift": DegradationConfig(),  # heavy: for GPU runs on DIV2K
}

# --- 2. The pipeline


# Random draws, all from g, a CPU torch.Generator: uniform() per sample, coin() and pick() once per batch.
def uniform(lo, hi, n, g):
    return lo + (hi - lo) * torch.rand(n, generator=g, dtype=torch.float64)


def coin(p, g):  # True with probability p
    return torch.rand((), generator=g).item() < p


def pick(options, g, probs=None):  # one of options, uniformly unless probs are given
    probs = torch.tensor(probs if probs is not None else [1.0] * len(options), dtype=torch.float64)
    return options[torch.multinomial(probs, 1, generator=g).item()]


def kernel_grid(size, pad_to):
    """The integer offsets (x, y) from the centre of a pad_to × pad_to kernel (x along columns), and the (B, pad_to,
    pad_to) mask of each sample's size × size centre: kernels of any size, zero-padded to filter a batch at once."""
    ax = torch.arange(-(pad_to // 2), pad_to // 2 + 1, dtype=torch.float64)
    y, x = torch.meshgrid(ax, ax, indexing="ij")
    r = (torch.as_tensor(size, dtype=torch.float64) // 2).view(-1, 1, 1)
    return x, y, (x.abs() <= r) & (y.abs() <= r)


def anisotropic_kernels(size, sigma_x, sigma_y, theta, beta, plateau, pad_to):
    """Gaussian, generalized Gaussian and plateau blur kernels, one per sample (all arguments (B,)).

    With Σ = R(θ)·diag(σx², σy²)·R(θ)ᵀ and Q(x) = xᵀΣ⁻¹x over integer offsets x from the centre:
        Gaussian               k(x) ∝ exp(−½·Q(x))           (β = 1)
        generalized Gaussian   k(x) ∝ exp(−½·Q(x)^β)
        plateau                k(x) ∝ 1 / (1 + Q(x)^β)
    Isotropic kernels are the case σy = σx, θ = 0. Each kernel is zero outside its size × size window
    and sums to 1.
    """
    x, y, inside = kernel_grid(size, pad_to)
    sx, sy, theta, beta, plateau = (torch.as_tensor(a).double().view(-1, 1, 1)
                                    for a in (sigma_x, sigma_y, theta, beta, plateau))
    c, s = torch.cos(theta), torch.sin(theta)
    u, v = c * x + s * y, -s * x + c * y  # Rᵀx: the offsets in the kernel's principal axes, where Σ⁻¹ is diagonal
    qb = ((u / sx) ** 2 + (v / sy) ** 2) ** beta
    k = torch.where(plateau.bool(), 1 / (1 + qb), torch.exp(-0.5 * qb)) * inside
    return k / k.sum((1, 2), keepdim=True)


def sinc_kernels(size, cutoff, pad_to):
    """2-D circular low-pass ("sinc") kernels, the ringing / overshoot artifact of real upscalers.

        k(x) ∝ ω_c · J₁(ω_c·|x|) / (2π·|x|),    k(0) = ω_c² / (4π)    (its limit at |x| → 0)

    with J₁ the Bessel function of the first kind and ω_c the cutoff (radians per pixel).
    """
    x, y, inside = kernel_grid(size, pad_to)
    wc = torch.as_tensor(cutoff, dtype=torch.float64).view(-1, 1, 1)
    r = torch.sqrt(x**2 + y**2)
    safe_r = torch.where(r == 0, torch.ones_like(r), r)
    k = torch.where(r == 0, wc**2 / (4 * math.pi), wc * torch.special.bessel_j1(wc * safe_r) / (2 * math.pi * safe_r))
    k = k * inside
    return k / k.sum((1, 2), keepdim=True)


def random_blur_kernels(n, ds: DegradationStage, g, pad_to=None):
    """n blur kernels for one stage (padded to its largest size), each from a random family with random
    parameters (Real-ESRGAN's random_mixed_kernels), or, with probability ds.sinc_prob, a sinc kernel."""
    pad_to = pad_to or max(ds.kernel_sizes)
    size = torch.tensor(ds.kernel_sizes)[torch.randint(len(ds.kernel_sizes), (n,), generator=g)]
    family = torch.multinomial(torch.tensor(ds.kernel_prob), n, True, generator=g)  # indices into KERNEL_FAMILIES
    iso, generalized, plateau = family % 2 == 0, family // 2 == 1, family // 2 == 2
    sigma_x = uniform(*ds.blur_sigma, n, g)
    sigma_y = torch.where(iso, sigma_x, uniform(*ds.blur_sigma, n, g))
    theta = torch.where(iso, 0.0, uniform(-math.pi, math.pi, n, g))
    # β: half the time uniform in [β_lo, 1], else in [1, β_hi] (so that β < 1 and β > 1 are equally common)
    low_half = torch.rand(n, generator=g) < 0.5
    beta_g = torch.where(low_half, uniform(ds.betag_range[0], 1, n, g), uniform(1, ds.betag_range[1], n, g))
    beta_p = torch.where(low_half, uniform(ds.betap_range[0], 1, n, g), uniform(1, ds.betap_range[1], n, g))
    beta = torch.where(plateau, beta_p, torch.where(generalized, beta_g, 1.0))
    blur = anisotropic_kernels(size, sigma_x, sigma_y, theta, beta, plateau, pad_to)
    # The sinc cutoff is kept above π/3 for small kernels, whose truncation would otherwise dominate.
    cutoff = torch.where(size < 13, uniform(math.pi / 3, math.pi, n, g), uniform(math.pi / 5, math.pi, n, g))
    use_sinc = torch.rand(n, generator=g) < ds.sinc_prob
    return torch.where(use_sinc.view(-1, 1, 1), sinc_kernels(size, cutoff, pad_to), blur).float()


def final_sinc_kernels(n, cfg: DegradationConfig, g):
    """The final filter: a sinc kernel (cutoff uniform in [π/3, π]) with probability final_sinc_prob,
    else a delta kernel, which leaves the image unchanged."""
    pad_to = max(cfg.final_sinc_sizes)
    size = torch.tensor(cfg.final_sinc_sizes)[torch.randint(len(cfg.final_sinc_sizes), (n,), generator=g)]
    sinc = sinc_kernels(size, uniform(math.pi / 3, math.pi, n, g), pad_to)
    use_sinc = torch.rand(n, generator=g) < cfg.final_sinc_prob
    return torch.where(use_sinc.view(-1, 1, 1), sinc, kernel_grid(1, pad_to)[2].double()).float()


def filter2d(img, kernels):
    """Blur each sample of img (B,C,H,W) with its own kernel (B,k,k), as one grouped convolution.

    Borders are reflect-padded, as in Real-ESRGAN (replicate-padded when a side is ≤ k/2, too small to
    reflect). All kernels here are point-symmetric, so conv2d's missing flip (it is a correlation) changes
    nothing. (An FFT product was measured 1.3-5× slower on a CPU for 64²-256² crops, 11-21 pixel kernels.)
    """
    b, c, h, w = img.shape
    p = kernels.shape[-1] // 2
    x = F.pad(img, (p, p, p, p), mode="reflect" if p < min(h, w) else "replicate")
    weight = kernels.to(img).repeat_interleave(c, dim=0).unsqueeze(1)  # sample i's kernel for its c channels
    return F.conv2d(x.reshape(1, b * c, h + 2 * p, w + 2 * p), weight, groups=b * c).view(b, c, h, w)


def resize(img, size, mode, antialias=False):
    """Resize; by default without antialiasing: the aliasing of a naive downscale is one of the degradations.
    ("area" averages the pixels each output pixel covers: it needs no antialiasing.)"""
    size = (max(1, int(size[0])), max(1, int(size[1])))
    return F.interpolate(img, size=size, mode=mode, antialias=antialias and mode != "area")


def random_scale(ds: DegradationStage, g):
    """Scale factor for a stage's resize: up in [1, hi], down in [lo, 1], or keep (1)."""
    direction = pick(("up", "down", "keep"), g, ds.resize_prob)
    lo, hi = {"up": (1.0, ds.resize_range[1]), "down": (ds.resize_range[0], 1.0), "keep": (1.0, 1.0)}[direction]
    return uniform(lo, hi, 1, g).item()


def gaussian_noise(img, sigma, dg):
    """Additive white Gaussian noise with standard deviation sigma (0-255 units, broadcast per sample)."""
    return torch.randn(img.shape, generator=dg, device=img.device, dtype=img.dtype) * (sigma / 255)


def poisson_noise(img, scale, dg):
    """Shot noise times `scale`: quantize to 8 bits, let v = the number of distinct values in each sample
    rounded up to a power of two, and return (Poisson(img·v)/v − img)·scale."""
    b, q = img.shape[0], to_uint8(img).to(img.dtype)
    # distinct values: mark each value seen (torch.unique or a CUDA bincount would wait on the GPU)
    seen = torch.zeros((b, 256), device=img.device).scatter_(1, q.long().reshape(b, -1), 1.0)
    v = (2 ** torch.ceil(torch.log2(seen.sum(1).to(img.dtype)))).view(b, 1, 1, 1)
    q = q / 255
    return (torch.poisson(q * v, generator=dg) / v - q) * scale


def add_noise(img, ds: DegradationStage, g, dg):
    """A stage's noise, added with probability ds.noise_prob: Gaussian or Poisson for the whole batch; per
    sample a level, and whether it is gray (computed on the luma, the same for R, G and B) or colour
    (independent per channel). g (CPU) draws the parameters; dg, on img's device, draws the noise itself."""
    from torchvision.transforms.functional import rgb_to_grayscale

    if not coin(ds.noise_prob, g):
        return img
    b = img.shape[0]
    gray = torch.rand(b, generator=g) < ds.gray_noise_prob
    if coin(ds.gaussian_noise_prob, g):
        noise_fn, level = gaussian_noise, uniform(*ds.noise_range, b, g)
    else:
        noise_fn, level = poisson_noise, uniform(*ds.poisson_scale_range, b, g)
    level = level.to(device=img.device, dtype=img.dtype).view(b, 1, 1, 1)
    noise = torch.empty_like(img)
    for mask, gray_case in ((~gray, False), (gray, True)):  # (CPU masks: splitting the batch costs no sync)
        if mask.any():
            i = mask.nonzero().flatten().to(img.device)
            x = rgb_to_grayscale(img[i]) if gray_case else img[i]
            noise[i] = noise_fn(x, level[i], dg).expand(-1, 3, -1, -1)
    return (img + noise).clamp(0, 1)


def jpeg(img, quality_range, g):
    """JPEG round trip with torchvision (libjpeg on the CPU, nvjpeg on CUDA), each sample at its own
    quality, drawn uniformly from the integers of quality_range."""
    from torchvision.io import decode_jpeg, encode_jpeg

    quality = torch.randint(int(quality_range[0]), int(quality_range[1]) + 1, (img.shape[0],), generator=g)
    x = to_uint8(img)
    streams = [encode_jpeg(x[i], quality=int(q)) for i, q in enumerate(quality.tolist())]
    # decode_jpeg takes bitstreams on the CPU only, whatever device it decodes on.
    return torch.stack(decode_jpeg([s.cpu() for s in streams], device=img.device)).to(img.dtype) / 255


def quantize(img):
    """What a real 8-bit LR image can hold."""
    return to_uint8(img).to(img.dtype) / 255


@torch.no_grad()
def degrade(hr, cfg: DegradationConfig = DEGRADATIONS["resshift"], generator=None):
    """Degrade a batch of HR images (B,3,H,W) in [0,1], on hr's device, by cfg's pipeline (PIPELINES).

    Returns (hr_target, lr): the HR batch cropped (top-left) to a multiple of SCALE, and the LR batch,
    (B,3,H//SCALE,W//SCALE), 8-bit-quantized, in [0,1]. `generator`, a CPU torch.Generator, makes the
    result reproducible (without one, its seed is drawn from torch's global RNG: torch.manual_seed applies).
    """
    g = generator if generator is not None else torch.Generator().manual_seed(int(torch.randint(2**62, ())))
    dg = g  # the noise itself is drawn on hr's device: by g on the CPU, else by a generator there seeded by g
    if hr.device.type != "cpu":
        dg = torch.Generator(hr.device).manual_seed(int(torch.randint(2**62, (), generator=g)))
    b, _, h, w = hr.shape
    H, W = h // SCALE * SCALE, w // SCALE * SCALE
    if H == 0 or W == 0:
        raise ValueError(f"image of {w}x{h} is smaller than the scale factor {SCALE}")
    hr, lr_size = hr[..., :H, :W], (H // SCALE, W // SCALE)
    if cfg.pipeline not in PIPELINES:
        raise ValueError(f"unknown degradation pipeline '{cfg.pipeline}' (choose from {', '.join(PIPELINES)})")
    if cfg.pipeline == "bicubic":  # the classic task: LR = bicubic↓4 with antialiasing, 8 bits
        return hr, quantize(resize(hr, lr_size, "bicubic", antialias=True))
    if cfg.pipeline == "one-stage":  # blur -> resize to the LR size -> noise -> JPEG
        out = filter2d(hr, random_blur_kernels(b, cfg.stage1, g))
        out = resize(out, lr_size, pick(cfg.resize_modes, g), cfg.antialias)
        out = add_noise(out, cfg.stage1, g, dg)
        return hr, quantize(jpeg(out, cfg.stage1.jpeg_range, g))

    # Stage 1: blur -> resize (up / down / keep) -> noise -> JPEG
    out = filter2d(hr, random_blur_kernels(b, cfg.stage1, g))
    scale1 = random_scale(cfg.stage1, g)
    out = resize(out, (H * scale1, W * scale1), pick(cfg.resize_modes, g))
    out = add_noise(out, cfg.stage1, g, dg)
    out = jpeg(out, cfg.stage1.jpeg_range, g)

    # Stage 2 (sometimes): blur (sometimes) -> resize around the LR size -> noise
    if coin(cfg.second_order_prob, g):
        if coin(cfg.second_blur_prob, g):
            out = filter2d(out, random_blur_kernels(b, cfg.stage2, g))
        scale2 = random_scale(cfg.stage2, g)
        out = resize(out, (H / SCALE * scale2, W / SCALE * scale2), pick(cfg.resize_modes, g))
        out = add_noise(out, cfg.stage2, g, dg)

    # Final step, in one of two orders: resize to the LR size -> sinc -> JPEG, or JPEG -> resize -> sinc
    sinc, mode = final_sinc_kernels(b, cfg, g), pick(cfg.resize_modes, g)
    if coin(cfg.final_order_prob, g):
        out = jpeg(filter2d(resize(out, lr_size, mode), sinc), cfg.stage2.jpeg_range, g)
    else:
        out = filter2d(resize(jpeg(out, cfg.stage2.jpeg_range, g), lr_size, mode), sinc)
    return hr, quantize(out)
