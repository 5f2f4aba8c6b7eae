"""End-to-end tests of sample.py with tiny random-weight checkpoints, on real photos. CPU, ~20 s.

    python -m pytest tests/test_sample.py
"""

import numpy as np
import pytest
import skimage.data
import torch
import torch.nn.functional as F
from PIL import Image

import checkpoint as C
import model as M
import sample as S
from conftest import RESSHIFT_SCHEDULE
from data import load_image


@pytest.fixture()
def photos(tmp_path):
    """Real photos in the modes people have: RGB at an odd size, RGBA, grayscale, 16-bit gray."""
    d = tmp_path / "in"
    d.mkdir()
    cat = skimage.data.chelsea()[40:77, 120:163]  # 43x37
    Image.fromarray(cat).save(d / "odd.png")
    alpha = np.linspace(0, 255, 43, dtype=np.uint8)[None].repeat(37, 0)
    Image.fromarray(np.dstack([cat, alpha])).save(d / "rgba.png")
    Image.fromarray(skimage.data.camera()[200:230, 200:250]).save(d / "gray.jpg")
    Image.fromarray(skimage.data.camera()[:20, :24].astype(np.uint16) * 257).save(d / "deep16.png")
    return d


def run(*args):
    return S.main([str(a) for a in args])


def test_every_output_is_exactly_4x(tmp_path, photos, ckpts):
    out = tmp_path / "out"
    assert run(photos, "-o", out, "--ckpt", ckpts / "student.pt") == 0
    for name, (w, h) in {"odd": (43, 37), "rgba": (43, 37), "gray": (50, 30), "deep16": (24, 20)}.items():
        with Image.open(out / f"{name}_x4.png") as im:
            assert im.size == (4 * w, 4 * h), name
            assert im.mode == ("RGBA" if name == "rgba" else "RGB")
    rgb, alpha = load_image(out / "rgba_x4.png")
    src_alpha = load_image(photos / "rgba.png")[1]
    expect = F.interpolate(src_alpha[None], scale_factor=4, mode="bicubic", align_corners=False)[0].clamp(0, 1)
    assert (alpha - expect).abs().max() <= 1 / 255 + 1e-6  # alpha upscaled bicubically, not super-resolved


def test_reproducible_for_a_seed(tmp_path, photos, ckpts):
    for seed, name in [(0, "a"), (0, "b"), (1, "c")]:
        assert run(photos / "odd.png", "-o", tmp_path / name, "--ckpt", ckpts / "student.pt", "--seed", seed) == 0
    a, b, c = ((tmp_path / n / "odd_x4.png").read_bytes() for n in "abc")
    assert a == b and a != c


def test_a_folder_with_a_bad_file_and_subfolders(tmp_path, photos, ckpts, capsys):
    (photos / "broken.png").write_text("not an image")
    (photos / "sub").mkdir()
    Image.fromarray(skimage.data.coffee()[:20, :28]).save(photos / "sub" / "cup.webp")
    out = tmp_path / "out"
    assert run(photos, "-o", out, "--ckpt", ckpts / "student.pt") == 1
    assert "broken.png" in capsys.readouterr().err
    assert (out / "sub" / "cup_x4.png").exists() and (out / "odd_x4.png").exists()
    assert not (out / "broken_x4.png").exists()


def test_never_overwrites_an_input(tmp_path, ckpts, capsys):
    d = tmp_path / "imgs"
    d.mkdir()
    Image.fromarray(skimage.data.coffee()[:16, :16]).save(d / "a.png")
    Image.fromarray(skimage.data.coffee()[:16, :16]).save(d / "a_x4.png")
    before = (d / "a_x4.png").read_bytes()
    assert run(d / "a.png", d / "a_x4.png", "-o", d, "--ckpt", ckpts / "student.pt") == 1
    assert "would overwrite an input" in capsys.readouterr().err
    assert (d / "a_x4.png").read_bytes() == before and (d / "a_x4_x4.png").exists()


def test_teacher_steps_and_samplers(tmp_path, photos, ckpts, capsys):
    img = photos / "odd.png"
    assert run(img, "-o", tmp_path / "d", "--ckpt", ckpts / "teacher.pt", "--steps", 3) == 0
    assert run(img, "-o", tmp_path / "a", "--ckpt", ckpts / "teacher.pt", "--steps", 3, "--sampler", "ancestral") == 0
    assert (tmp_path / "d" / "odd_x4.png").read_bytes() != (tmp_path / "a" / "odd_x4.png").read_bytes()
    with pytest.raises(SystemExit, match="is a student"):
        run(img, "-o", tmp_path / "x", "--ckpt", ckpts / "student.pt", "--steps", 4)
    capsys.readouterr()
    run(img, "-o", tmp_path / "t", "--ckpt", ckpts / "teacher.pt")  # a teacher defaults to all T steps
    assert "15 steps, deterministic sampler" in capsys.readouterr().out


def test_default_checkpoint_is_the_shipped_student(tmp_path, monkeypatch, photos, ckpts, capsys):
    """With no --ckpt, the student in the repository's weights/ (wherever the command runs from); when that
    file is missing, an error that says what to do."""
    import checkpoint

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(checkpoint, "SHIPPED", tmp_path / "weights")
    with pytest.raises(SystemExit, match="the shipped student .* is missing.*python train.py --data demo"):
        run(photos / "odd.png")
    (tmp_path / "weights").mkdir()
    import shutil

    shutil.copy(ckpts / "student.pt", tmp_path / "weights" / "student.pt")
    assert run(photos / "odd.png") == 0
    assert "weights/student.pt: student, one step" in capsys.readouterr().out
    assert (tmp_path / "results" / "odd_x4.png").exists()


def test_bad_checkpoint_is_a_clear_error(tmp_path, photos):
    (tmp_path / "junk.pt").write_bytes(b"12345")
    with pytest.raises(SystemExit, match="junk.pt is not a readable checkpoint"):
        run(photos / "odd.png", "--ckpt", tmp_path / "junk.pt", "-o", tmp_path)


def test_tiled_output_is_close_to_untiled(ckpts):
    """Tiles see less context than the whole image, so the outputs differ, but little: far less than a
    change of the noise ε does."""
    student = C.load_checkpoint(ckpts / "student.pt")
    teacher = C.load_checkpoint(ckpts / "teacher.pt")
    rgb = torch.from_numpy(skimage.data.rocket()[100:196, 200:320]).permute(2, 0, 1).float() / 255  # 120x96
    for model, kw in [(student, {}), (teacher, {"steps": 3, "sampler": "ancestral"})]:
        whole = S.upscale_image(model, rgb, tile=0, **kw)
        tiled = S.upscale_image(model, rgb, tile=48, overlap=16, **kw)
        other_eps = S.upscale_image(model, rgb, tile=0, seed=1, **kw)
        assert whole.shape == tiled.shape == (3, 384, 480)
        assert (tiled - whole).abs().mean() < 0.5 * (other_eps - whole).abs().mean()


class Pointwise(torch.nn.Module):
    """A 'UNet' that looks at one latent pixel at a time: tiling must then change nothing at all. Its input is
    [c_in·(x_t − y₀) (48 channels), y₀ (48), LR (3)]."""

    def forward(self, x, t, return_dict=False):
        return (0.8 * x[:, :48] - 0.3 * x[:, 48:96] + 0.1 * x[:, 96:].repeat_interleave(16, 1)
                + 0.01 * t.view(-1, 1, 1, 1),)


@pytest.mark.parametrize("kind,kw", [("student", {}), ("teacher", {"steps": 4}),
                                     ("teacher", {"steps": 4, "sampler": "ancestral"})])
def test_tiling_adds_no_seams(kind, kw):
    """One x_t, one ε and one step noise for the whole image, x̂₀ blended at every step: with a local
    network the tiled result equals the untiled one, for every sampler."""
    model = M.SRModel(M.ModelConfig(size="tiny", **RESSHIFT_SCHEDULE), kind=kind)
    model.net = Pointwise()
    rgb = torch.from_numpy(skimage.data.rocket()[100:196, 200:320]).permute(2, 0, 1).float() / 255
    whole = S.upscale_image(model, rgb, tile=0, **kw)
    tiled = S.upscale_image(model, rgb, tile=48, overlap=16, **kw)
    torch.testing.assert_close(tiled, whole, atol=1e-5, rtol=0)


def test_tiles_cover_the_image():
    assert S.tile_starts(100, 128, 96) == [0]
    assert S.tile_starts(200, 64, 48) == [0, 48, 96, 136]
    starts = S.tile_starts(1000, 256, 224)
    assert starts[-1] + 256 == 1000 and all(b - a <= 224 for a, b in zip(starts, starts[1:]))


def test_half_precision_on_the_cpu_runs_in_fp32(tmp_path, photos, ckpts, capsys):
    assert run(photos / "odd.png", "-o", tmp_path, "--ckpt", ckpts / "student.pt", "--precision", "fp16") == 0
    assert "not used on the CPU; running in fp32" in capsys.readouterr().out


def test_benchmark_prints_a_table(tmp_path, photos, ckpts, capsys):
    (tmp_path / "a_bad.png").write_text("not an image")  # first in line: the warm-up must skip it
    assert run(tmp_path / "a_bad.png", photos / "odd.png", photos / "gray.jpg", "-o", tmp_path / "out",
               "--ckpt", ckpts / "student.pt", "--benchmark") == 1
    captured = capsys.readouterr()
    assert "odd.png" in captured.out and "172x148" in captured.out and "images/s" in captured.out
    assert "peak memory" in captured.out and "a_bad.png" in captured.err
    assert (tmp_path / "out" / "odd_x4.png").exists() and (tmp_path / "out" / "gray_x4.png").exists()


def test_steps_out_of_range_is_an_error(tmp_path, photos, ckpts):
    for steps in (0, 16):
        with pytest.raises(SystemExit, match="between 1 and the teacher's T = 15"):
            run(photos / "odd.png", "-o", tmp_path, "--ckpt", ckpts / "teacher.pt", "--steps", steps)
