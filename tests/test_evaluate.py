"""Tests of evaluate.py: the metrics against independent implementations, pairing, and a full run.

    python -m pytest tests/test_evaluate.py
"""

import csv
import importlib.machinery
import importlib.util
import sys
import types

import numpy as np
import pytest
import skimage.color
import skimage.data
import skimage.metrics
import torch
from PIL import Image

import evaluate as E


def photo(name="astronaut", size=128):
    return torch.from_numpy(getattr(skimage.data, name)()[:size, :size]).permute(2, 0, 1).double() / 255


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
    y = E.rgb_to_y(rgb.T.reshape(3, 1, 5).double()).flatten() * 255
    assert y.tolist() == pytest.approx([235.0, 16.0, 16 + 65.481, 16 + 128.553, 16 + 24.966])
    img = photo()
    np.testing.assert_allclose(E.rgb_to_y(img)[0].numpy(), skimage_y(img), atol=1e-10)


@pytest.mark.parametrize("kind", ["blur", "noise", "shift"])
def test_psnr_and_ssim_match_scikit_image(kind):
    hr = photo("coffee")
    sr = distortions(hr)[kind]
    y_sr, y_hr = skimage_y(sr), skimage_y(hr)
    assert E.psnr(sr, hr) == pytest.approx(skimage.metrics.peak_signal_noise_ratio(y_hr, y_sr, data_range=1), abs=1e-8)
    ref = skimage.metrics.structural_similarity(y_hr, y_sr, gaussian_weights=True, sigma=1.5,
                                                use_sample_covariance=False, data_range=1.0)
    assert E.ssim(sr, hr) == pytest.approx(ref, abs=1e-8)


def test_metrics_order_distortions_sensibly():
    hr = photo("chelsea")
    assert E.psnr(hr, hr) == float("inf") and E.ssim(hr, hr) == pytest.approx(1.0)
    mild, strong = distortions(hr)["blur"], distortions(distortions(hr)["blur"])["blur"]
    assert E.psnr(strong, hr) < E.psnr(mild, hr) and E.ssim(strong, hr) < E.ssim(mild, hr)


def test_hf_ratio_is_one_for_identical_images_and_drops_with_blur():
    from torchvision.transforms.functional import gaussian_blur

    hr = photo("astronaut")
    assert E.hf_ratio(hr, hr) == pytest.approx(1.0)
    ratios = [E.hf_ratio(gaussian_blur(hr.float(), 9, s).double(), hr) for s in (0.5, 1.0, 2.0)]
    assert 1 > ratios[0] > ratios[1] > ratios[2] > 0
    bic = E.bicubic(torch.nn.functional.interpolate(hr[None].float(), scale_factor=0.25, mode="area")[0])
    assert E.hf_ratio(bic.double(), hr) < 0.3  # a bicubic upscale has little of the missing band


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
    assert [p.stem for p in E.find_images(hr_dir)] != [p.stem for p in E.find_images(lr_dir)]
    pairs = E.load_pairs(str(hr_dir), str(lr_dir), seed=0)
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
        E.load_pairs(str(hr_dir), str(lr_dir), seed=0)
    assert "HR without LR" in str(err.value) and "a_cup" in str(err.value) and "z_extra" in str(err.value)
    (lr_dir / "z_extra.png").rename(lr_dir / "a_cup.png")
    save(skimage.data.coffee()[:20, :20], lr_file(lr_dir, "b_cat"))
    with pytest.raises(SystemExit, match="b_cat.png is 20x20, but its HR image"):
        E.load_pairs(str(hr_dir), str(lr_dir), seed=0)
    save(skimage.data.coffee()[:16, :22], lr_dir / "again" / "b_cat.png")
    with pytest.raises(SystemExit, match="LR images with the same name .*b_cat"):
        E.load_pairs(str(hr_dir), str(lr_dir), seed=0)
    with pytest.raises(SystemExit, match="--lr-dir .*nowhere: no such folder"):
        E.load_pairs(str(hr_dir), str(tmp_path / "nowhere"), seed=0)


def test_missing_div2k_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VPDSR_DATA", raising=False)
    with pytest.raises(SystemExit, match="DIV2K_valid_HR"):
        E.load_pairs("DIV2K", None, seed=0)


def test_generated_lr_is_fixed_per_image_name(folders):
    hr_dir, _ = folders
    a = {s: lr for s, _, lr in E.load_pairs(str(hr_dir), None, seed=0)}
    next(hr_dir.rglob("c_rocket.png")).unlink()  # another set of images: the remaining LR inputs do not change
    b = {s: lr for s, _, lr in E.load_pairs(str(hr_dir), None, seed=0)}
    assert torch.equal(a["b_cat"], b["b_cat"]) and torch.equal(a["a_cup"], b["a_cup"])
    c = {s: lr for s, _, lr in E.load_pairs(str(hr_dir), None, seed=1)}
    assert not torch.equal(a["b_cat"], c["b_cat"])


# ------------------------------------------------------------------ a whole run


def test_end_to_end_report(tmp_path, ckpts, capsys, monkeypatch):
    real_find_spec = importlib.util.find_spec  # as on a machine without pyiqa, wherever this runs
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "pyiqa" else real_find_spec(name, *a))
    out = tmp_path / "report"
    assert E.main(["--ckpt", str(ckpts / "student.pt"), "--data", "demo", "--out", str(out),
                   "--teacher-steps", "2"]) == 0
    for d in ("hr", "lr", "bicubic", "teacher", "student"):
        assert sorted(p.name for p in (out / d).iterdir()) == ["chelsea.png", "rocket.png"], d
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert len(rows) == 6 and {r["method"] for r in rows} == {"bicubic", "teacher", "student"}
    assert {"image", "method", "psnr", "ssim", "hf_ratio", "latency_ms", "lpips", "niqe"} <= set(rows[0])
    assert all(float(r["psnr"]) > 10 and 0 < float(r["ssim"]) <= 1 for r in rows)
    assert all(r["psnr_vs_teacher"] for r in rows if r["method"] == "student")
    assert all(r["lpips"] == "" for r in rows)  # pyiqa absent here: no number, never a made-up one
    summary = (out / "summary.md").read_text()
    assert "| bicubic |" in summary and "| student |" in summary and "speed-up" in summary
    assert "pyiqa is not installed" in summary and "BT.601" in summary and "python evaluate.py" in summary
    with Image.open(out / "compare.png") as im:
        assert im.size[0] > 5 * 100  # LR | bicubic | teacher | student | HR
    printed = capsys.readouterr().out
    assert "| teacher |" in printed and "report:" in printed
    hr = E.load_image(out / "hr" / "chelsea.png")[0]
    assert hr.shape[1] % 4 == 0 and hr.shape[2] % 4 == 0
    assert E.load_image(out / "lr" / "chelsea.png")[0].shape[1:] == (hr.shape[1] // 4, hr.shape[2] // 4)


def test_pyiqa_metrics_when_available_and_reasons_when_not(monkeypatch, tmp_path, ckpts):
    fake = types.ModuleType("pyiqa")
    fake.__spec__ = importlib.machinery.ModuleSpec("pyiqa", None)
    fake.__version__ = "0-fake"

    class Constant(torch.nn.Module):
        def forward(self, *images):
            return torch.tensor([0.5 if len(images) == 1 else 0.25])

    def create_metric(name, **kw):
        if name in ("musiq", "maniqa", "clipiqa"):
            raise RuntimeError("could not download the weights")
        return Constant()

    fake.create_metric = create_metric
    monkeypatch.setitem(sys.modules, "pyiqa", fake)
    out = tmp_path / "r"
    assert E.main(["--ckpt", str(ckpts / "student.pt"), "--data", "demo", "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert {r["lpips"] for r in rows} == {"0.25"} and {r["niqe"] for r in rows} == {"0.5"}
    assert {r["musiq"] for r in rows} == {""}
    summary = (out / "summary.md").read_text()
    assert "musiq: n/a, its weights could not be loaded" in summary and "could not download" in summary


def test_bad_checkpoint_is_refused(tmp_path, ckpts):
    with pytest.raises(SystemExit, match="holds a teacher, but a student"):
        E.main(["--ckpt", str(ckpts / "teacher.pt"), "--out", str(tmp_path)])
