"""Tests of evaluate.py: the metrics against independent implementations, pairing, and a full run.

    python -m pytest tests/test_evaluate.py
"""

import csv

import numpy as np
import pytest
import skimage.color
import skimage.data
import skimage.metrics
import torch
from PIL import Image

import evaluate
import metrics
from conftest import photo as conftest_photo
from tools import webpage
from data import find_images, load_image, save_png
from test_webpage import check_web_page


def photo(name="astronaut", size=128):
    return conftest_photo(name, size, batch=False, dtype=torch.float64)


def distortions(img):
    """Known distortions of a real photo, each quantized to 8 bits like a saved PNG."""
    from torchvision.transforms.functional import gaussian_blur

    g = torch.Generator().manual_seed(0)
    out = {"blur": gaussian_blur(img.float(), 7, 2.0).double(),
           "noise": img + 0.05 * torch.randn(img.shape, generator=g, dtype=torch.float64),
           "shift": img.roll(1, -1)}
    return {k: ((v.clamp(0, 1) * 255).round() / 255) for k, v in out.items()}


def skimage_y(img):
    """Y by scikit-image's own BT.601 conversion, as an independent reference, scaled to [0,1]."""
    return skimage.color.rgb2ycbcr(img.permute(1, 2, 0).numpy())[..., 0] / 255


def test_y_channel_is_bt601():
    rgb = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    y = metrics.rgb_to_y(rgb.T.reshape(3, 1, 5).double()).flatten() * 255
    assert y.tolist() == pytest.approx([235.0, 16.0, 16 + 65.481, 16 + 128.553, 16 + 24.966])
    img = photo()
    np.testing.assert_allclose(metrics.rgb_to_y(img)[0].numpy(), skimage_y(img), atol=1e-10)


@pytest.mark.parametrize("kind", ["blur", "noise", "shift"])
def test_psnr_matches_scikit_image(kind):
    hr = photo("coffee")
    sr = distortions(hr)[kind]
    y_sr, y_hr = skimage_y(sr), skimage_y(hr)
    reference = skimage.metrics.peak_signal_noise_ratio(y_hr, y_sr, data_range=1)
    assert metrics.psnr(sr, hr) == pytest.approx(reference, abs=1e-8)


# ------------------------------------------------------------------ SSIM: pyiqa's numbers, without pyiqa


def ssim_pairs():
    """(name, sr, hr) on real photos, rebuilt deterministically: each sr is a degraded hr (Gaussian blur,
    a 2-pixel shift, or a ×4 area-downscale + bicubic upscale, then white noise from a fixed torch
    seed), both quantized to 8 bits and returned as float32, exactly as load_image reads a saved PNG."""
    from torchvision.transforms.functional import gaussian_blur

    u8 = lambda x: ((x.clamp(0, 1) * 255).round() / 255).float()  # noqa: E731  (= save_png, load_image)
    out = []
    cases = [("chelsea", (256, 256), 1.5, 0.02, 1), ("astronaut", (512, 512), 1.0, 0.05, 2),  # blur + noise
             ("coffee", (200, 300), None, 0.1, 3),  # noise only
             ("rocket", (240, 320), "x4", 0.0, 4), ("astronaut", (160, 224), "x4", 0.15, 6),  # ×4 bicubic (+ noise)
             ("chelsea", (300, 448), "shift", 0.0, 5)]  # shifted texture
    for name, (h, w), how, sigma, seed in cases:
        hr = torch.from_numpy(getattr(skimage.data, name)()[:h, :w].copy()).permute(2, 0, 1).double() / 255
        if how == "x4":
            sr = evaluate.bicubic(torch.nn.functional.avg_pool2d(hr[None], 4)[0].float()).double()
        elif how == "shift":  # texture two pixels off: locally anti-correlated, where pyiqa's clip at 0 acts
            sr = hr.roll(2, -1)
        elif how:
            sr = gaussian_blur(hr, 9, how)
        else:
            sr = hr
        noise = torch.randn(hr.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        out.append((f"{name}-{h}x{w}-{how}-{sigma}", u8(sr + sigma * noise), u8(hr)))
    return out


# pyiqa's SSIM of each pair above, computed once with pyiqa 0.1.16 (PyTorch 2.14.1, CPU; the SSIM itself
# is in float64 there) by this snippet, run from the repository root in a separate virtual environment
# that has pyiqa (CI does not: this test must not import it):
#
#     import pyiqa, tests.test_evaluate
#     m = pyiqa.create_metric("ssim", test_y_channel=True, color_space="ycbcr", device="cpu")
#     for name, sr, hr in tests.test_evaluate.ssim_pairs():
#         print(f'"{name}": {m(sr[None], hr[None]).item()!r},')
PYIQA_SSIM = {
    "chelsea-256x256-1.5-0.02": 0.7490357388158991,
    "astronaut-512x512-1.0-0.05": 0.7014428535815386,
    "coffee-200x300-None-0.1": 0.4730802335318399,
    "rocket-240x320-x4-0.0": 0.8919885357781275,
    "astronaut-160x224-x4-0.15": 0.2522541354889325,
    "chelsea-300x448-shift-0.0": 0.6999260959187558,
}


def test_ssim_matches_pyiqa():
    pairs = ssim_pairs()
    assert [name for name, _, _ in pairs] == list(PYIQA_SSIM)
    diffs = {name: metrics.ssim(sr, hr) - PYIQA_SSIM[name] for name, sr, hr in pairs}
    assert all(abs(d) < 2e-3 for d in diffs.values()), diffs  # the contract: pyiqa's number to 0.002
    # ... and in fact to round-off: a convention drift (unrounded Y, no clip at 0, L = 1) moves some of
    # these by 1e-4 to 6e-3, so it would show here
    assert max(abs(d) for d in diffs.values()) < 1e-5, diffs


def test_ssim_conventions_are_scikit_images_on_8bit_luma_but_clipped():
    """An independent check of the window, constants and valid-window averaging: scikit-image's SSIM of the
    8-bit-rounded luma with L = 255 is the same SSIM without pyiqa's clip of cs at 0. The clip can only
    raise the score: not at all on blur and mild noise, a little on strong noise, clearly on shifted
    texture (locally anti-correlated)."""
    for name, sr, hr in ssim_pairs():
        y8 = lambda img: np.round(skimage_y(img.double()) * 255)  # noqa: E731
        ref = skimage.metrics.structural_similarity(y8(hr), y8(sr), gaussian_weights=True, sigma=1.5,
                                                    use_sample_covariance=False, data_range=255)
        ours = metrics.ssim(sr, hr)
        assert ours >= ref - 1e-5, name
        if "shift" in name:
            assert ours > ref + 1e-3, name
        elif not name.endswith("0.15"):
            assert ours == pytest.approx(ref, abs=1e-5), name


def test_metrics_order_distortions_sensibly():
    hr = photo("chelsea")
    assert metrics.psnr(hr, hr) == float("inf") and metrics.ssim(hr, hr) == pytest.approx(1.0)
    mild, strong = distortions(hr)["blur"], distortions(distortions(hr)["blur"])["blur"]
    assert metrics.psnr(strong, hr) < metrics.psnr(mild, hr) and metrics.ssim(strong, hr) < metrics.ssim(mild, hr)


def test_hf_ratio_is_one_for_identical_images_and_drops_with_blur():
    from torchvision.transforms.functional import gaussian_blur

    hr = photo("astronaut")
    assert metrics.hf_ratio(hr, hr) == pytest.approx(1.0)
    ratios = [metrics.hf_ratio(gaussian_blur(hr.float(), 9, s).double(), hr) for s in (0.5, 1.0, 2.0)]
    assert 1 > ratios[0] > ratios[1] > ratios[2] > 0
    bic = evaluate.bicubic(torch.nn.functional.interpolate(hr[None].float(), scale_factor=0.25, mode="area")[0])
    assert metrics.hf_ratio(bic.double(), hr) < 0.3  # a bicubic upscale has little of the missing band


def test_lf_psnr_is_psnr_of_4x4_block_means():
    hr = photo("coffee", 128)
    for sr in distortions(hr).values():
        # independently: numpy block means of scikit-image's luma, then PSNR with peak 1
        blocks = lambda img: skimage_y(img).reshape(32, 4, 32, 4).mean(axis=(1, 3))  # noqa: E731
        ref = skimage.metrics.peak_signal_noise_ratio(blocks(hr), blocks(sr), data_range=1)
        assert metrics.lf_psnr(sr, hr) == pytest.approx(ref, abs=1e-8)
    # detail that averages out inside each block costs nothing: a ±d checkerboard of 2×2 cells
    checker = ((torch.arange(128)[:, None] // 2 + torch.arange(128)[None, :] // 2) % 2 * 2 - 1).double()
    textured = hr * 0.8 + 0.1 + 0.05 * checker
    # > 200 dB: round-off only
    assert metrics.lf_psnr(textured, hr * 0.8 + 0.1) > 200 and metrics.psnr(textured, hr * 0.8 + 0.1) < 30
    assert metrics.lf_psnr(hr, hr) == float("inf")


def white_noise(shape, seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_hf_corr_is_the_pixel_domain_correlation_of_the_hf_ratio_band():
    """hf_corr against an independent computation: numpy's FFT of the Hann-windowed, mean-removed luma, the
    band kept, back to pixels, and the plain correlation of the two high-passed images."""
    hr = photo("astronaut", 128)
    sr = distortions(hr)["blur"]
    win = np.outer(np.hanning(128), np.hanning(128))  # numpy's Hann window is the symmetric one

    def high_passed(img):
        y = skimage_y(img)
        f = np.fft.fftfreq(128)
        keep = np.hypot(f[:, None], f[None, :]) / 0.5 >= 0.25
        return np.fft.ifft2(np.fft.fft2((y - y.mean()) * win) * keep).real

    a, b = high_passed(sr), high_passed(hr)
    assert metrics.hf_corr(sr, hr) == pytest.approx((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()), abs=1e-10)
    assert metrics.hf_ratio(sr, hr) == pytest.approx((a * a).sum() / (b * b).sum(), rel=1e-10)  # the same band


def test_hf_corr_tells_real_detail_from_noise():
    hr = photo("astronaut", 256)
    # the HR image's own detail, at any strength: 1
    assert metrics.hf_corr(hr, hr) == pytest.approx(1.0) and metrics.hf_corr(0.5 * hr + 0.2, hr) == pytest.approx(1.0)
    # pure white noise, weak or strong, saved as 8 bits: about 0
    for sigma in (0.01, 0.1, 0.3):
        noise_img = ((0.5 + sigma * white_noise(hr.shape)).clamp(0, 1) * 255).round() / 255
        assert abs(metrics.hf_corr(noise_img, hr)) < 0.05, sigma
    # HR + noise: the band is B + N, so hf_corr = √(E_B / E_(B+N)) + corr(N, B)·√(E_N / E_(B+N)) exactly:
    # HR's share of the band's amplitude, up to the noise's own (≈ 0) correlation with the real detail.
    # The noise adds energy but nothing to the projection onto HR, however strong it is.
    for sigma in (0.05, 0.5, 5.0):
        n = sigma * white_noise(hr.shape, 1)
        e_b, e_n, e_bn = (metrics.band_energy(metrics.hf_band(x)) for x in (hr, n, hr + n))
        share, slack = np.sqrt(e_b / e_bn), 0.05 * np.sqrt(e_n / e_bn)
        assert abs(metrics.hf_corr(hr + n, hr) - share) < slack, sigma
    assert metrics.hf_corr(hr + 5.0 * white_noise(hr.shape, 1), hr) < 0.05  # strong noise: about 0


def test_hf_corr_of_little_or_no_detail():
    hr = photo("astronaut", 256)
    lr = torch.nn.functional.interpolate(hr[None].float(), scale_factor=0.25, mode="area")[0]
    bic = evaluate.bicubic(lr).double()
    # a bicubic upscale keeps only a faint trace of the band, but what it keeps is the real detail's trace
    assert metrics.hf_ratio(bic, hr) < 0.1 and 0 < metrics.hf_corr(bic, hr) < 1
    flat = torch.full_like(hr, 0.3)  # no band at all: 0.0, not a division by ~0
    assert metrics.hf_corr(flat, hr) == 0.0 and metrics.hf_corr(hr, flat) == 0.0
    assert np.isnan(metrics.hf_ratio(hr, flat))  # a ratio to nothing is undefined


# ------------------------------------------------------------------ the bicubic+noise baseline


def test_noise_scale_solves_the_quadratic_exactly_when_nothing_clips():
    hr = photo("astronaut", 256)
    bic = evaluate.bicubic(torch.nn.functional.avg_pool2d(hr[None], 4)[0].float()).double()
    base = 0.3 + 0.4 * bic  # room to spare
    noise = white_noise(hr.shape, 2)
    target = 2 * metrics.hf_ratio(base, hr)
    a = evaluate.noise_scale(base, noise, hr, target)
    assert 0 <= (base + a * noise).min() and (base + a * noise).max() <= 1  # no clipping: the exact root
    assert metrics.hf_ratio(base + a * noise, hr) == pytest.approx(target, rel=1e-9)


@pytest.mark.parametrize("target", [0.3, 1.0, 2.5])
def test_bicubic_plus_noise_has_the_target_hf_ratio(target):
    hr = photo("chelsea", 256)
    bic = evaluate.bicubic(torch.nn.functional.avg_pool2d(hr[None], 4)[0].float())
    bic = (bic * 255).round() / 255  # the saved bicubic PNG, as evaluate.py starts from it
    noise = white_noise(hr.shape, 3)
    a = evaluate.noise_scale(bic, noise, hr, target)
    before = (bic.double() + a * noise).clamp(0, 1)  # clamped, not yet quantized: the solved quantity
    assert metrics.hf_ratio(before, hr) == pytest.approx(target, rel=1e-3)
    img = evaluate.bicubic_plus_noise(bic, hr, target, seed=3)  # the same noise (seed 3), clamped and quantized
    assert torch.equal(img, (before * 255).round() / 255)
    assert metrics.hf_ratio(img, hr) == pytest.approx(target, rel=1e-2)  # the rounding adds a little energy
    assert abs(metrics.hf_corr(img, hr)) < metrics.hf_corr(bic, hr)  # its detail is (mostly) not the real detail
    assert not torch.equal(img, evaluate.bicubic_plus_noise(bic, hr, target, seed=4))  # the seed picks the noise


def test_bicubic_plus_noise_below_bicubics_own_detail_is_bicubic():
    hr = photo("chelsea", 128)
    bic = evaluate.bicubic(torch.nn.functional.avg_pool2d(hr[None], 4)[0].float())
    bic = (bic * 255).round() / 255
    assert evaluate.noise_scale(bic, white_noise(hr.shape), hr, 0.5 * metrics.hf_ratio(bic, hr)) == 0.0
    same = evaluate.bicubic_plus_noise(bic, hr, 0.5 * metrics.hf_ratio(bic, hr), seed=0)
    assert torch.equal((same * 255).round(), (bic * 255).round().double())  # the same 8-bit values


# ------------------------------------------------------------------ pairing


def save(img, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)


@pytest.fixture()
def folders(tmp_path):
    """HR images and their LR versions, in sub-folders arranged so that path order and name order disagree:
    pairing by sort order would match the wrong images."""
    hr_dir, lr_dir = tmp_path / "hr", tmp_path / "lr"
    for (hr_sub, lr_sub), stem, name in [(("2", "a"), "b_cat", "chelsea"), (("1", "c"), "a_cup", "coffee"),
                                         (("3", "b"), "c_rocket", "rocket")]:
        img = getattr(skimage.data, name)()[:66, :90]
        save(img, hr_dir / hr_sub / f"{stem}.png")
        lr = np.asarray(Image.fromarray(img[:64, :88]).resize((22, 16), Image.BICUBIC))
        save(lr, lr_dir / lr_sub / f"{stem}.png")
    return hr_dir, lr_dir


def lr_file(lr_dir, stem):
    return next(lr_dir.rglob(f"{stem}.png"))


def test_pairs_by_name_not_order(folders):
    hr_dir, lr_dir = folders
    assert [p.stem for p in find_images(hr_dir)] != [p.stem for p in find_images(lr_dir)]
    pairs = evaluate.load_pairs(str(hr_dir), str(lr_dir), seed=0)
    assert sorted(s for s, _, _ in pairs) == ["a_cup", "b_cat", "c_rocket"]
    for stem, hr, lr in pairs:
        assert hr.shape == (3, 64, 88) and lr.shape == (3, 16, 22)  # HR cropped top-left to a multiple of 4
        expect = torch.from_numpy(np.array(Image.open(lr_file(lr_dir, stem)))).permute(2, 0, 1) / 255
        torch.testing.assert_close(lr, expect.float())
        src = torch.from_numpy(np.array(Image.open(next(hr_dir.rglob(f"{stem}.png"))))).permute(2, 0, 1) / 255
        torch.testing.assert_close(hr, src[:, :64, :88].float())


def test_missing_and_mismatched_pairs_are_named(folders, tmp_path):
    hr_dir, lr_dir = folders
    lr_file(lr_dir, "a_cup").rename(lr_dir / "z_extra.png")
    with pytest.raises(SystemExit) as err:
        evaluate.load_pairs(str(hr_dir), str(lr_dir), seed=0)
    assert "HR without LR" in str(err.value) and "a_cup" in str(err.value) and "z_extra" in str(err.value)
    (lr_dir / "z_extra.png").rename(lr_dir / "a_cup.png")
    save(skimage.data.coffee()[:20, :20], lr_file(lr_dir, "b_cat"))
    with pytest.raises(SystemExit, match="b_cat.png is 20x20, but its HR image"):
        evaluate.load_pairs(str(hr_dir), str(lr_dir), seed=0)
    save(skimage.data.coffee()[:16, :22], lr_dir / "again" / "b_cat.png")
    with pytest.raises(SystemExit, match="LR images with the same name .*b_cat"):
        evaluate.load_pairs(str(hr_dir), str(lr_dir), seed=0)
    with pytest.raises(SystemExit, match="--lr-dir .*nowhere: no such folder"):
        evaluate.load_pairs(str(hr_dir), str(tmp_path / "nowhere"), seed=0)


def test_missing_div2k_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VPDSR_DATA", raising=False)
    with pytest.raises(SystemExit, match="DIV2K_valid_HR"):
        evaluate.load_pairs("DIV2K", None, seed=0)


def test_generated_lr_is_fixed_per_image_name(folders):
    hr_dir, _ = folders
    a = {s: lr for s, _, lr in evaluate.load_pairs(str(hr_dir), None, 0, "resshift")}
    next(hr_dir.rglob("c_rocket.png")).unlink()  # another set of images: the remaining LR inputs do not change
    b = {s: lr for s, _, lr in evaluate.load_pairs(str(hr_dir), None, 0, "resshift")}
    assert torch.equal(a["b_cat"], b["b_cat"]) and torch.equal(a["a_cup"], b["a_cup"])
    c = {s: lr for s, _, lr in evaluate.load_pairs(str(hr_dir), None, 1, "resshift")}
    assert not torch.equal(a["b_cat"], c["b_cat"])
    with pytest.raises(SystemExit, match="no degradation"):  # LR inputs to make need one
        evaluate.load_pairs(str(hr_dir), None, 0)


# ------------------------------------------------------------------ a whole run


def test_end_to_end_report(tmp_path, ckpts, capsys, monkeypatch):
    monkeypatch.setattr(metrics, "weights_dir", lambda: tmp_path / "no-weights")  # as before --fetch-weights
    out = tmp_path / "report"
    # another method's outputs, scored beside the rows: here the HR images themselves, saved by name
    other = tmp_path / "other"
    for stem, hr, _ in evaluate.load_pairs("demo", None, 0, "bicubic"):
        save_png(hr, other / f"{stem}.png")
    assert evaluate.main(["--ckpt", str(ckpts / "student.pt"), "--data", "demo", "--out", str(out),
                   "--teacher-steps", "2", "--compare", f"oracle={other}"]) == 0
    methods = ["bicubic", "bicubic+noise", "teacher", "teacher_1step", "student", "oracle"]
    for d in ("hr", "lr", *methods):
        assert sorted(p.name for p in (out / d).iterdir()) == ["chelsea.png", "rocket.png"], d
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert len(rows) == 12 and [r["method"] for r in rows[:6]] == methods
    assert all(r["psnr"] == "inf" and r["latency_ms"] == "" for r in rows if r["method"] == "oracle")
    assert list(rows[0])[:7] == ["image", "method", "psnr", "ssim", "lf_psnr", "hf_ratio", "hf_corr"]
    assert {"psnr_vs_teacher", "latency_ms", "lpips", "niqe"} <= set(rows[0])
    assert all(float(r["psnr"]) > 10 and 0 < float(r["ssim"]) <= 1 and float(r["lf_psnr"]) >= float(r["psnr"])
               and -1 <= float(r["hf_corr"]) <= 1 for r in rows if r["method"] != "oracle")
    assert all(float(r["ssim"]) == pytest.approx(1) and float(r["hf_corr"]) == pytest.approx(1)
               for r in rows if r["method"] == "oracle")  # the HR images themselves
    assert all(r["psnr_vs_teacher"] for r in rows if r["method"] == "student")
    assert all(r["lpips"] == "" and r["dists"] == "" for r in rows)  # no weights here: no number, never a made-up one
    assert all((r["latency_ms"] == "") == (r["method"] in ("bicubic+noise", "oracle")) for r in rows)  # not timed
    by = {(r["image"], r["method"]): r for r in rows}
    for stem in ("chelsea", "rocket"):  # the baseline has the student's detail energy (to 8-bit rounding)
        assert float(by[stem, "bicubic+noise"]["hf_ratio"]) == pytest.approx(float(by[stem, "student"]["hf_ratio"]),
                                                                               rel=0.05)
    teacher_1step = load_image(out / "teacher_1step" / "chelsea.png")[0]
    assert not torch.equal(teacher_1step, load_image(out / "teacher" / "chelsea.png")[0])  # 1 call vs 2 steps
    summary = (out / "summary.md").read_text()
    assert all(f"| {m} |" in summary for m in methods) and "speed-up over the 2-step teacher" in summary
    assert "| lf_psnr | hf_ratio | hf_corr |" in summary and "baseline that cheap" in summary
    assert "lpips: n/a, its weights are not here: python metrics.py --fetch-weights" in summary
    assert "BT.601" in summary and "python evaluate.py" in summary and "deterministic sampler for 2 steps" in summary
    # no --degradation: the one the student checkpoint was trained on, and the summary says so
    assert f"degradation bicubic ({ckpts / 'student.pt'} was trained on bicubic)" in summary
    with Image.open(out / "compare.png") as im:
        assert im.size[0] > 8 * 100  # LR | bicubic | bicubic+noise | teacher | teacher_1step | student | oracle | HR
    printed = capsys.readouterr().out
    assert "| teacher |" in printed and "| bicubic+noise |" in printed and "tools/webpage.py" in printed
    hr = load_image(out / "hr" / "chelsea.png")[0]
    assert hr.shape[1] % 4 == 0 and hr.shape[2] % 4 == 0
    assert load_image(out / "lr" / "chelsea.png")[0].shape[1:] == (hr.shape[1] // 4, hr.shape[2] // 4)
    # the web page of this report, rendered apart (evaluate.py writes none)
    assert not (out / "index.html").exists() and webpage.main([str(out)]) == 0
    check_web_page(out, ["chelsea", "rocket"], ["lr", *methods, "hr"])
    assert evaluate.mean(evaluate.read_metrics(out), "oracle", "psnr") == float("inf")  # as the tools read it


@pytest.fixture(scope="module")
def ckpts_t3(tmp_path_factory):
    """Like conftest's ckpts, with a teacher trained for T = 3 steps: a run without --teacher-steps must use
    the checkpoint's own T (a fixed default such as 15 would be refused), and 3 steps keep the test short. The
    files do not say which degradation they were trained on."""
    import checkpoint
    import model

    root = tmp_path_factory.mktemp("runs_t3")
    torch.manual_seed(0)
    teacher = model.SRModel(model.ModelConfig(size="tiny", T=3))
    checkpoint.save_checkpoint(root / "teacher.pt", teacher, None, 0)
    checkpoint.save_checkpoint(root / "student.pt", model.make_student(teacher), None, 0)
    return root


def test_teacher_steps_default_to_the_checkpoints_T(monkeypatch, tmp_path, ckpts_t3):
    monkeypatch.setattr(metrics, "weights_dir", lambda: tmp_path / "no-weights")
    out = tmp_path / "r"
    assert evaluate.main(["--ckpt", str(ckpts_t3 / "student.pt"), "--data", "demo", "--out", str(out),
                          "--degradation", "light"]) == 0
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert {r["lpips"] for r in rows} == {""}  # n/a without the fetched weights, never a made-up number
    summary = (out / "summary.md").read_text()
    # no --teacher-steps: the teacher's own T, and the summary says how many steps were run
    assert "deterministic sampler for 3 steps" in summary and "over the 3-step teacher" in summary
    assert "degradation light (--degradation; no checkpoint says what it was trained on)" in summary


def test_a_checkpoint_without_its_degradation_needs_the_flag(tmp_path, ckpts_t3):
    with pytest.raises(SystemExit, match="does not say which degradation .* pass --degradation"):
        evaluate.main(["--ckpt", str(ckpts_t3 / "student.pt"), "--data", "demo", "--out", str(tmp_path)])


def test_bad_checkpoint_is_refused(tmp_path, ckpts):
    with pytest.raises(SystemExit, match="holds a teacher, but a student"):
        evaluate.main(["--ckpt", str(ckpts / "teacher.pt"), "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match=r"--teacher-steps 99: .* trained with T = \d+ steps; choose 1 to"):
        evaluate.main(["--ckpt", str(ckpts / "student.pt"), "--teacher-steps", "99", "--out", str(tmp_path)])


def test_a_teacher_alone(tmp_path, ckpts_t3, monkeypatch):
    """--teacher without --ckpt: the teacher before any student; no student and no bicubic+noise rows."""
    out = tmp_path / "report"
    assert evaluate.main(["--teacher", str(ckpts_t3 / "teacher.pt"), "--data", "demo", "--out", str(out),
                   "--degradation", "bicubic"]) == 0
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [r["method"] for r in rows[:3]] == ["bicubic", "teacher", "teacher_1step"] and len(rows) == 6
    assert not (out / "student").exists() and not (out / "bicubic+noise").exists()
    assert "- checkpoints: teacher " in (out / "summary.md").read_text()
    # bicubic LR inputs: the classic downscale of the HR image, nothing random
    hr = load_image(out / "hr" / "rocket.png")[0]
    expected = torch.nn.functional.interpolate(hr[None], scale_factor=0.25, mode="bicubic", antialias=True)
    torch.testing.assert_close(load_image(out / "lr" / "rocket.png")[0], expected[0].clamp(0, 1),
                               atol=0.6 / 255, rtol=0)
    import checkpoint

    monkeypatch.setattr(checkpoint, "SHIPPED", tmp_path / "no-weights")
    with pytest.raises(SystemExit, match="the shipped student .* is missing"):  # neither: the shipped pair
        evaluate.main(["--data", "demo", "--out", str(out)])


def test_lr_dir_and_degradation_together_are_refused(folders, ckpts, tmp_path):
    hr_dir, lr_dir = folders
    with pytest.raises(SystemExit, match="--lr-dir gives the LR inputs; --degradation would make other ones"):
        evaluate.main(["--ckpt", str(ckpts / "student.pt"), "--data", str(hr_dir), "--lr-dir", str(lr_dir),
                       "--degradation", "light", "--out", str(tmp_path / "r")])
