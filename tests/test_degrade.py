"""Tests of the degradation pipeline (degrade.py, parts 1 and 2). CPU, a few seconds.

    python -m pytest tests/test_degrade.py

Every random branch is forced once with its probability set to 0 or 1 (as Real-ESRGAN's own tests do),
and the kernel formulas are checked against an independent evaluation of their closed forms.
"""

import json
import math
from dataclasses import asdict, replace

import numpy as np
import pytest
import scipy.special
import torch

import degrade
from conftest import photo
from degrade import DEGRADATIONS, SCALE, STAGE1

RESSHIFT = DEGRADATIONS["resshift"]
FAMILIES = degrade.KERNEL_FAMILIES


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def force(cfg=RESSHIFT, stage1=None, stage2=None, **top):
    """A config with some probabilities / ranges overridden, in either stage or at the top level."""
    return replace(cfg, stage1=replace(cfg.stage1, **(stage1 or {})), stage2=replace(cfg.stage2, **(stage2 or {})),
                   **top)


def one_hot(family):
    return tuple(float(f == family) for f in FAMILIES)


# ------------------------------------------------------------------ kernels against their closed forms


def reference_kernel(family, size, sx, sy, theta, beta):
    """Direct evaluation of the definitions, point by point, with an explicit Σ = R diag(σx², σy²) Rᵀ."""
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    inv = np.linalg.inv(rot @ np.diag([sx**2, sy**2]) @ rot.T)
    r = size // 2
    k = np.zeros((size, size))
    for row in range(size):
        for c in range(size):
            p = np.array([c - r, row - r], dtype=float)  # (x, y): x along columns
            q = p @ inv @ p
            k[row, c] = 1 / (1 + q**beta) if family == "plateau" else math.exp(-0.5 * q**beta)
    return k / k.sum()


def reference_sinc(size, wc):
    r = size // 2
    k = np.zeros((size, size))
    for row in range(size):
        for c in range(size):
            d = math.hypot(c - r, row - r)
            k[row, c] = wc**2 / (4 * math.pi) if d == 0 else wc * scipy.special.j1(wc * d) / (2 * math.pi * d)
    return k / k.sum()


def centre(k, size):
    off = (k.shape[-1] - size) // 2
    return k[..., off : off + size, off : off + size]


@pytest.mark.parametrize(
    "family,size,sx,sy,theta,beta",
    [
        ("gaussian", 7, 1.3, 1.3, 0.0, 1.0),
        ("gaussian", 11, 2.5, 0.7, 0.6, 1.0),
        ("generalized", 9, 1.8, 1.1, -2.1, 0.6),
        ("generalized", 15, 2.2, 2.2, 0.0, 3.5),
        ("plateau", 13, 1.5, 0.9, 1.2, 1.7),
        ("plateau", 21, 3.0, 3.0, 0.0, 1.0),
    ],
)
def test_blur_kernel_matches_closed_form(family, size, sx, sy, theta, beta):
    params = [torch.tensor([v], dtype=torch.float64) for v in (sx, sy, theta, beta)]
    k = degrade.anisotropic_kernels(torch.tensor([size]), *params, torch.tensor([family == "plateau"]), pad_to=21)[0]
    assert k.shape == (21, 21)
    assert k.sum().item() == pytest.approx(1.0, abs=1e-12)
    # zero outside the requested size, and exactly the closed form inside it
    assert k.abs().sum().item() == pytest.approx(centre(k, size).abs().sum().item(), abs=1e-15)
    np.testing.assert_allclose(centre(k, size).numpy(), reference_kernel(family, size, sx, sy, theta, beta),
                               rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("size,wc", [(7, math.pi / 3), (13, 2.0), (21, math.pi / 5), (9, math.pi)])
def test_sinc_kernel_matches_closed_form(size, wc):
    k = degrade.sinc_kernels(torch.tensor([size]), torch.tensor([wc], dtype=torch.float64), pad_to=21)[0]
    assert k.sum().item() == pytest.approx(1.0, abs=1e-12)
    # torch.special.bessel_j1 is accurate to ~5e-7 absolute (scipy to ~1e-15): compare at that level
    np.testing.assert_allclose(centre(k, size).numpy(), reference_sinc(size, wc), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("family", FAMILIES)
def test_each_kernel_family_is_drawn_as_defined(family):
    """Force one family; read β back from the kernel's shape along the x axis and check its range."""
    st = replace(STAGE1, kernel_prob=one_hot(family), kernel_sizes=(9,), sinc_prob=0.0, blur_sigma=(2.0, 3.0))
    ks = degrade.random_blur_kernels(64, st, gen(), pad_to=21).double()
    assert ks.shape == (64, 21, 21)
    torch.testing.assert_close(ks.sum((1, 2)), torch.ones(64, dtype=torch.float64), rtol=0, atol=1e-5)
    assert (ks >= 0).all() and (ks[:, :6].abs().sum() == 0)  # non-negative; nothing outside the 9×9 window
    k0, k1, k2 = ks[:, 10, 10], ks[:, 10, 11], ks[:, 10, 12]  # offsets 0, 1, 2 along x
    if family.startswith("plateau"):  # k(x)/k(0) = 1/(1 + Q^β) and Q(2) = 4·Q(1)  =>  ratio = 4^β
        beta = torch.log((k0 / k2 - 1) / (k0 / k1 - 1)) / math.log(4)
        lo, hi = STAGE1.betap_range
    else:  # log k(x) − log k(0) = −½·Q^β  =>  same ratio of log-decays
        beta = torch.log(torch.log(k0 / k2) / torch.log(k0 / k1)) / math.log(4)
        lo, hi = STAGE1.betag_range if family.startswith("generalized") else (1.0, 1.0)
    assert beta.min() >= lo - 1e-3 and beta.max() <= hi + 1e-3
    if family.startswith("generalized"):  # both halves of the β draw occur: [0.5, 1] and [1, 4]
        assert (beta < 0.99).any() and (beta > 1.01).any()
    if family.startswith("plateau"):  # [1, 1] and [1, 2]
        assert (beta - 1).abs().min() < 1e-3 and (beta > 1.01).any()
    symmetric = torch.isclose(ks, ks.transpose(1, 2), atol=1e-7).flatten(1).all(1)
    if family.endswith("aniso"):
        assert not symmetric.all()
    else:
        assert symmetric.all()


def test_sinc_branch_and_size_draw():
    st = replace(STAGE1, sinc_prob=1.0, kernel_sizes=(7, 9))
    ks = degrade.random_blur_kernels(32, st, gen(), pad_to=21)
    assert (ks.flatten(1).min(1).values < 0).all()  # ringing: every sinc kernel has negative lobes
    support = (ks.abs() > 0).any(1).sum(1)  # width of the non-zero columns
    assert set(support.tolist()) <= {7, 9} and len(set(support.tolist())) == 2
    no_sinc = degrade.random_blur_kernels(32, replace(st, sinc_prob=0.0), gen(), pad_to=21)
    assert (no_sinc >= 0).all()


def test_sinc_cutoff_depends_on_kernel_size(monkeypatch):
    seen = []
    original = degrade.sinc_kernels
    monkeypatch.setattr(degrade, "sinc_kernels", lambda size, cutoff, pad_to: seen.append((size, cutoff))
                        or original(size, cutoff, pad_to))
    degrade.random_blur_kernels(400, replace(STAGE1, sinc_prob=1.0, kernel_sizes=(7, 9, 15, 17)), gen(), 21)
    size, cutoff = seen[0]
    small, large = cutoff[size < 13], cutoff[size >= 13]
    assert small.min() >= math.pi / 3 and small.max() <= math.pi
    assert large.min() >= math.pi / 5 and large.max() <= math.pi and (large < math.pi / 3).any()


def test_final_jpeg_uses_the_second_stage_quality(monkeypatch):
    """Stage 2 has no JPEG of its own: two JPEGs, stage 1's, then the final one at stage 2's qualities."""
    import torchvision.io

    qualities = []
    original = torchvision.io.encode_jpeg
    monkeypatch.setattr(torchvision.io, "encode_jpeg", lambda x, quality: qualities.append(quality)
                        or original(x, quality=quality))
    for second_order in (0.0, 1.0):
        qualities.clear()
        cfg = force(stage1={"jpeg_range": (90, 90)}, stage2={"jpeg_range": (20, 20)}, second_order_prob=second_order)
        degrade.degrade(photo(size=(64, 64)).expand(2, -1, -1, -1), cfg, gen())
        assert qualities == [90, 90, 20, 20]


def test_final_filter_is_delta_or_sinc():
    delta = degrade.final_sinc_kernels(4, replace(RESSHIFT, final_sinc_prob=0.0), gen())
    assert delta.shape == (4, 13, 13)  # padded to the largest final sinc size
    assert (delta[:, 6, 6] == 1).all() and delta.sum().item() == 4
    sinc = degrade.final_sinc_kernels(4, replace(RESSHIFT, final_sinc_prob=1.0), gen())
    assert (sinc.flatten(1).min(1).values < 0).any() and (sinc[:, 6, 6] < 1).all()
    img = photo(size=(64, 64))
    torch.testing.assert_close(degrade.filter2d(img, delta[:1]), img)


@pytest.mark.parametrize("size,sinc", [((48, 40), 0.0), ((48, 40), 1.0), ((8, 6), 0.0)])
def test_filter2d_blurs_each_sample_with_its_own_kernel(size, sinc):
    """Against a direct convolution, one sample at a time."""
    img = torch.cat([photo(size=size), photo("coffee", size=size)])
    ks = degrade.random_blur_kernels(2, replace(STAGE1, sinc_prob=sinc), gen(3), pad_to=21)
    out = degrade.filter2d(img, ks)
    for i in range(2):
        mode = "reflect" if min(size) > 10 else "replicate"  # (too small to reflect a 21×21 kernel's border)
        x = torch.nn.functional.pad(img[i : i + 1], (10,) * 4, mode=mode)
        ref = torch.nn.functional.conv2d(x.transpose(0, 1), ks[i][None, None]).transpose(0, 1)
        torch.testing.assert_close(out[i : i + 1], ref, atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------ noise, JPEG, USM


def test_noise_has_zero_mean_and_the_requested_spread():
    img = torch.full((4, 3, 128, 128), 0.5)
    g = gen()
    gauss = degrade.gaussian_noise(img, torch.tensor(20.0), g)
    assert abs(gauss.mean().item()) < 3 * (20 / 255) / math.sqrt(gauss.numel())
    assert gauss.std().item() == pytest.approx(20 / 255, rel=0.02)
    pois = degrade.poisson_noise(img, 1.0, g)
    # a constant image has 1 distinct value -> v = 1: Poisson(0.5)/1 - 0.5, mean 0, variance 0.5
    assert abs(pois.mean().item()) < 3 * math.sqrt(0.5) / math.sqrt(pois.numel())
    assert pois.var().item() == pytest.approx(0.5, rel=0.05)
    real = photo("coffee", size=(128, 128)).expand(8, -1, -1, -1)
    pois = degrade.poisson_noise(real, 1.0, g)
    assert abs(pois.mean().item()) < 2e-3


@pytest.mark.parametrize("gray", [0.0, 1.0])
@pytest.mark.parametrize("gaussian", [0.0, 1.0])
def test_gray_and_colour_noise(gray, gaussian):
    st = replace(STAGE1, gray_noise_prob=gray, gaussian_noise_prob=gaussian, noise_range=(10, 10),
                 poisson_scale_range=(1, 1))
    img = photo("coffee", size=(64, 64)).expand(3, -1, -1, -1) * 0.5 + 0.25
    out = degrade.add_noise(img, st, gen(), gen(1))
    noise = out - img
    assert noise.abs().mean() > 1e-3
    inside = ((out > 0) & (out < 1)).all(1)  # where no channel was clamped, gray noise is equal in R, G, B
    assert inside.float().mean() > 0.5
    diff = (noise[:, 0] - noise[:, 1]).abs().amax(0) + (noise[:, 1] - noise[:, 2]).abs().amax(0)
    same = bool((diff[inside.all(0)] < 1e-6).all())
    assert same == (gray == 1.0)


def test_lower_jpeg_quality_gives_larger_error():
    img = photo("chelsea", size=(256, 256))
    err = {q: (degrade.jpeg(img, (q, q), gen()) - img).pow(2).mean().item() for q in (10, 50, 95)}
    assert err[10] > err[50] > err[95] > 0


def test_quantize_is_to_uint8():
    img = torch.tensor([-0.1, 0.0, 0.4 / 255, 0.6 / 255, 0.5, 1.0, 1.2], dtype=torch.float64).view(1, 1, 1, -1)
    q = degrade.quantize(img)
    assert q.dtype == torch.float64
    assert (q * 255).flatten().tolist() == [0, 0, 0, 1, 128, 255, 255]


# ------------------------------------------------------------------ the whole pipeline


def test_shapes_range_and_quantization():
    hr = torch.cat([photo(size=(256, 256)), photo("coffee", size=(256, 256))])
    assert SCALE == 4
    for name, cfg in DEGRADATIONS.items():
        hr_t, lr = degrade.degrade(hr, cfg, gen())
        assert hr_t.shape == (2, 3, 256, 256) and lr.shape == (2, 3, 64, 64), name
        torch.testing.assert_close(hr_t, hr)  # the HR target is the HR image itself
        assert lr.min() >= 0 and lr.max() <= 1
        torch.testing.assert_close(lr * 255, (lr * 255).round(), atol=1e-4, rtol=0)
    hr_t, lr = degrade.degrade(photo(size=(259, 130)), RESSHIFT, gen())  # odd sizes: crop HR top-left to 256x128
    assert hr_t.shape[-2:] == (256, 128) and lr.shape[-2:] == (64, 32)
    torch.testing.assert_close(hr_t, photo(size=(256, 128)))
    with pytest.raises(ValueError, match="smaller than the scale factor 4"):
        degrade.degrade(photo(size=(3, 40)), RESSHIFT, gen())


def test_deterministic_under_a_seed_and_different_across_seeds():
    hr = torch.cat([photo(size=(128, 128)), photo("coffee", size=(128, 128))])
    for name, cfg in DEGRADATIONS.items():
        a = degrade.degrade(hr, cfg, gen(7))[1]
        b = degrade.degrade(hr, cfg, gen(7))[1]
        c = degrade.degrade(hr, cfg, gen(8))[1]
        assert torch.equal(a, b)
        assert torch.equal(a, c) == (name == "bicubic")  # (the classic downscale has nothing random)
    torch.manual_seed(5)  # without a generator, torch's global seed decides
    a = degrade.degrade(hr)[1]
    torch.manual_seed(5)
    assert torch.equal(a, degrade.degrade(hr)[1])


class Spy:
    """Record the calls degrade.degrade() makes to the pipeline's building blocks."""

    def __init__(self, monkeypatch):
        self.calls = []
        for name in ("filter2d", "resize", "jpeg", "gaussian_noise", "poisson_noise"):
            original = getattr(degrade, name)
            monkeypatch.setattr(degrade, name, self._wrap(name, original))

    def _wrap(self, name, fn):
        def wrapped(*args, **kwargs):
            out = fn(*args, **kwargs)
            detail = {"resize": lambda: (args[2], tuple(out.shape[-2:]))}.get(name, lambda: None)()
            self.calls.append((name, detail))
            return out

        return wrapped

    def names(self, include=("filter2d", "resize", "jpeg", "gaussian_noise", "poisson_noise")):
        return [n for n, _ in self.calls if n in include]


def run(monkeypatch, cfg, seed=0):
    hr = photo(size=(128, 128)).expand(2, -1, -1, -1).contiguous()
    spy = Spy(monkeypatch)
    _, lr = degrade.degrade(hr, cfg, gen(seed))
    assert lr.shape == (2, 3, 32, 32) and lr.min() >= 0 and lr.max() <= 1
    return spy


def test_second_stage_on_and_off(monkeypatch):
    structure = ("filter2d", "resize", "jpeg")
    off = run(monkeypatch, force(second_order_prob=0.0, final_order_prob=1.0)).names(structure)
    assert off == ["filter2d", "resize", "jpeg", "resize", "filter2d", "jpeg"]
    on = run(monkeypatch, force(second_order_prob=1.0, second_blur_prob=1.0, final_order_prob=1.0)).names(structure)
    assert on == ["filter2d", "resize", "jpeg", "filter2d", "resize", "resize", "filter2d", "jpeg"]
    no_blur = run(monkeypatch, force(second_order_prob=1.0, second_blur_prob=0.0, final_order_prob=1.0))
    assert no_blur.names(structure) == ["filter2d", "resize", "jpeg", "resize", "resize", "filter2d", "jpeg"]


def test_both_final_orders(monkeypatch):
    structure = ("filter2d", "resize", "jpeg")
    a = run(monkeypatch, force(second_order_prob=0.0, final_order_prob=1.0)).names(structure)
    assert a[-3:] == ["resize", "filter2d", "jpeg"]
    b = run(monkeypatch, force(second_order_prob=0.0, final_order_prob=0.0)).names(structure)
    assert b[-3:] == ["jpeg", "resize", "filter2d"]


@pytest.mark.parametrize("gaussian", [0.0, 1.0])
def test_gaussian_or_poisson(monkeypatch, gaussian):
    cfg = force(stage1=dict(gaussian_noise_prob=gaussian), stage2=dict(gaussian_noise_prob=gaussian),
                second_order_prob=1.0)
    names = run(monkeypatch, cfg).names()
    used = "gaussian_noise" if gaussian else "poisson_noise"
    unused = "poisson_noise" if gaussian else "gaussian_noise"
    assert names.count(used) >= 2 and unused not in names


@pytest.mark.parametrize("mode", ["area", "bilinear", "bicubic"])
def test_each_resize_mode(monkeypatch, mode):
    calls = run(monkeypatch, force(resize_modes=(mode,), second_order_prob=1.0)).calls
    modes = [d[0] for n, d in calls if n == "resize"]
    assert modes == [mode] * 3


@pytest.mark.parametrize("direction,probs", [("up", (1, 0, 0)), ("down", (0, 1, 0)), ("keep", (0, 0, 1))])
def test_resize_up_down_keep(monkeypatch, direction, probs):
    ranges = dict(resize_prob=probs, resize_range=(0.5, 2.0))
    cfg = force(stage1=ranges, stage2=ranges, second_order_prob=1.0)
    sizes = [d[1][0] for n, d in run(monkeypatch, cfg).calls if n == "resize"]
    stage1, stage2 = sizes[0], sizes[1]  # from the 128 HR size, and around the 32 LR size
    expect = {"up": (stage1 > 128 and stage2 > 32), "down": (stage1 < 128 and stage2 < 32),
              "keep": (stage1 == 128 and stage2 == 32)}
    assert expect[direction], sizes
    assert sizes[2] == 32  # the final resize always lands on the LR size


def test_config_is_written_as_json():
    """train.py records the degradation's settings (dataclasses.asdict) in its config.json."""
    for cfg in DEGRADATIONS.values():
        assert json.loads(json.dumps(asdict(cfg)))["stage1"]["jpeg_range"] == list(cfg.stage1.jpeg_range)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_batch_is_deterministic_and_valid():
    hr = torch.cat([photo(size=(256, 256))] * 4).cuda()
    for cfg in DEGRADATIONS.values():
        _, a = degrade.degrade(hr, cfg, gen(1))
        _, b = degrade.degrade(hr, cfg, gen(1))
        assert a.device.type == "cuda" and a.shape == (4, 3, 64, 64)
        assert torch.equal(a, b)


# ------------------------------------------------------------------ the lighter degradations


def test_bicubic_is_the_classic_downscale():
    """LR = an antialiased bicubic ×4 downscale, 8 bits: checked against Pillow's (an independent
    implementation of the same filter, a = −0.5, support widened by the scale)."""
    from PIL import Image

    hr = photo(size=(256, 192))
    _, lr = degrade.degrade(hr, DEGRADATIONS["bicubic"], gen())
    arr = (hr[0].permute(1, 2, 0) * 255).round().byte().numpy()
    ref = np.asarray(Image.fromarray(arr).resize((48, 64), Image.Resampling.BICUBIC), dtype=np.float32) / 255
    diff = (lr[0].permute(1, 2, 0).numpy() - ref)
    assert np.abs(diff).max() < 2.5 / 255 and np.abs(diff).mean() < 0.5 / 255  # (8-bit rounding of both)
    assert torch.equal(lr, degrade.degrade(hr, DEGRADATIONS["bicubic"], gen(1))[1])  # nothing random


def test_light_is_one_mild_stage(monkeypatch):
    kernels = []
    for name in ("random_blur_kernels", "final_sinc_kernels"):
        monkeypatch.setattr(degrade, name, lambda *a, name=name, f=getattr(degrade, name): kernels.append(name)
                            or f(*a))
    spy = run(monkeypatch, DEGRADATIONS["light"])
    names = spy.names(("filter2d", "resize", "jpeg"))
    assert names == ["filter2d", "resize", "jpeg"]  # one stage: blur, straight to the LR size, one JPEG
    assert [d[1] for n, d in spy.calls if n == "resize"] == [(32, 32)]
    assert kernels == ["random_blur_kernels"]  # no stage-2 or final kernels drawn: it uses none
    # mild: close to the clean downscale (far closer than the heavy resshift), but not the same
    hr = torch.cat([photo(size=(256, 256)), photo("coffee", size=(256, 256)), photo("chelsea", size=(256, 256))])
    clean = degrade.degrade(hr, DEGRADATIONS["bicubic"])[1]

    def psnr(a, b):
        return (-10 * torch.log10(((a - b) ** 2).mean((1, 2, 3)))).mean().item()

    light = [psnr(degrade.degrade(hr, DEGRADATIONS["light"], gen(s))[1], clean) for s in range(6)]
    heavy = [psnr(degrade.degrade(hr, DEGRADATIONS["resshift"], gen(s))[1], clean) for s in range(6)]
    assert 28 < np.mean(light) < 50 and np.mean(heavy) < np.mean(light) - 5


@pytest.mark.parametrize("prob", [0.0, 1.0])
def test_noise_prob_turns_a_stage_noise_off(prob):
    img = photo(size=(32, 32))
    st = replace(DEGRADATIONS["light"].stage1, noise_prob=prob)
    noisy = degrade.add_noise(img, st, gen(), gen())
    assert torch.equal(noisy, img) == (prob == 0.0)


def test_noise_prob_coin_is_always_drawn():
    """A stage that always adds noise draws its coin too: the same generator state gives the same noise
    whether noise_prob is 1 or just below it."""
    img = photo(size=(32, 32))
    always = degrade.add_noise(img, replace(STAGE1, noise_prob=1.0), gen(4), gen(5))
    almost = degrade.add_noise(img, replace(STAGE1, noise_prob=1 - 1e-9), gen(4), gen(5))
    assert torch.equal(always, almost) and not torch.equal(always, img)


def test_antialiased_downscale_removes_aliasing():
    """A stripe pattern at 3/4 of Nyquist: a naive ×4 bicubic keeps a strong alias, the antialiased one
    (what the light degradation uses) averages it away."""
    x = torch.arange(128, dtype=torch.float32)
    stripes = (0.5 + 0.5 * torch.cos(math.pi * 0.75 * x)).expand(1, 3, 128, 128).contiguous()
    naive = degrade.resize(stripes, (32, 32), "bicubic")
    smooth = degrade.resize(stripes, (32, 32), "bicubic", antialias=True)
    assert naive.std() > 0.1 and smooth.std() < 0.02
