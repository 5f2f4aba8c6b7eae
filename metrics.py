"""
metrics.py: the numbers evaluate.py reports, written out here with the field's conventions (MATLAB,
basicsr, pyiqa), short and testable.

    psnr, ssim           the field's full-reference metrics (SSIM exactly as pyiqa computes it)
    lf_psnr              structure: PSNR of the 4×4 block means (is the input's content kept?)
    hf_ratio, hf_corr    detail: the energy of the band above a quarter of Nyquist, and its correlation
                         with the real image's (is the detail the real one, or invented?)
    bicubic_plus_noise   the baseline that cheap "detail" must beat
    iqa_metrics          pyiqa's LPIPS / CLIPIQA / MUSIQ / NIQE / MANIQA, where installed

Every metric reads the Y channel of images in [0, 1] (evaluate.py passes the saved 8-bit PNGs), in fp64.
"""

import importlib.util
import math

import torch
import torch.nn.functional as F

from losses import high_pass_mask

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
