"""Tests of the images and training data (data.py), of tools/degradations.py's command line and of the
downloads (tools/fetch.py, without a network). CPU, a few seconds.

    python -m pytest tests/test_data.py
"""

import struct
from pathlib import Path
import zlib

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

import data
from tools import degradations, fetch


@pytest.fixture(scope="module")
def rgb():
    """A small real photo, (H, W, 3) uint8."""
    return skimage.data.chelsea()[100:140, 150:210]


def write_png16(path, arr):
    """A 16-bit PNG written by hand (Pillow cannot write 16-bit RGB): signature, IHDR, IDAT, IENdata."""
    h, w = arr.shape[:2]
    color_type = 0 if arr.ndim == 2 else {3: 2, 4: 6}[arr.shape[2]]  # gray, RGB, RGBA
    raw = b"".join(b"\x00" + arr[i].astype(">u2").tobytes() for i in range(h))

    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
                     + chunk(b"IEND", b""))


def as_tensor(arr):
    return torch.from_numpy(arr).permute(2, 0, 1).float() / 255


# ------------------------------------------------------------------ reading images


@pytest.mark.parametrize("ext", [".png", ".bmp", ".tif", ".webp"])
def test_lossless_rgb_formats(tmp_path, rgb, ext):
    path = tmp_path / f"x{ext}"
    Image.fromarray(rgb).save(path, **({"lossless": True} if ext == ".webp" else {}))
    img, alpha = data.load_image(path)
    assert img.shape == (3, 40, 60) and img.dtype == torch.float32 and alpha is None
    torch.testing.assert_close(img, as_tensor(rgb))


@pytest.mark.parametrize("mode", ["L", "1", "P"])
def test_gray_binary_and_palette_become_rgb(tmp_path, rgb, mode):
    im = Image.fromarray(rgb).convert(mode)
    im.save(tmp_path / "x.png")
    img, alpha = data.load_image(tmp_path / "x.png")
    assert img.shape == (3, 40, 60) and alpha is None
    torch.testing.assert_close(img, as_tensor(np.array(im.convert("RGB"))))
    if mode != "P":
        assert torch.equal(img[0], img[1]) and torch.equal(img[1], img[2])


def test_rgba_and_gray_alpha_keep_their_alpha(tmp_path, rgb):
    a = np.linspace(0, 255, 60, dtype=np.uint8)[None].repeat(40, 0)
    Image.fromarray(np.dstack([rgb, a])).save(tmp_path / "rgba.png")
    img, alpha = data.load_image(tmp_path / "rgba.png")
    torch.testing.assert_close(img, as_tensor(rgb))  # alpha dropped from the colours
    torch.testing.assert_close(alpha, torch.from_numpy(a).float()[None] / 255)
    Image.fromarray(np.dstack([rgb[..., 0], a]), "LA").save(tmp_path / "la.png")
    img, alpha = data.load_image(tmp_path / "la.png")
    assert img.shape == (3, 40, 60) and alpha.shape == (1, 40, 60)


def test_cmyk_jpeg(tmp_path, rgb):
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "x.jpg", quality=98)
    img, _ = data.load_image(tmp_path / "x.jpg")
    assert img.shape == (3, 40, 60)
    assert (img - as_tensor(rgb)).abs().mean() < 0.03  # JPEG loss only: CMYK was converted back to RGB


def test_16_bit_gray_and_rgb(tmp_path, rgb):
    g16 = rgb[..., 1].astype(np.uint16) * 257 + 100  # uses the low byte too
    Image.fromarray(g16).save(tmp_path / "g16.png")
    img, _ = data.load_image(tmp_path / "g16.png")
    torch.testing.assert_close(img, torch.from_numpy(g16 / 65535).float()[None].expand(3, -1, -1))
    rgb16 = rgb.astype(np.uint16) * 257 + 100
    write_png16(tmp_path / "rgb16.png", rgb16)
    img, _ = data.load_image(tmp_path / "rgb16.png")
    assert img.shape == (3, 40, 60)
    assert (img - torch.from_numpy(rgb16 / 65535).float().permute(2, 0, 1)).abs().max() <= 1 / 255 + 1e-6


def test_exif_rotation_is_applied(tmp_path, rgb):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    Image.fromarray(rgb).save(tmp_path / "r.jpg", exif=exif, quality=95)
    img, _ = data.load_image(tmp_path / "r.jpg")
    assert img.shape == (3, 60, 40)


def test_unreadable_file_names_itself(tmp_path):
    (tmp_path / "bad.png").write_text("not an image")
    with pytest.raises(ValueError, match="bad.png"):
        data.load_image(tmp_path / "bad.png")


def test_find_images_is_recursive_and_filters_extensions(tmp_path, rgb):
    for rel in ["a.png", "sub/b.JPG", "sub/deeper/c.tiff", "notes.txt", "sub/d.gif"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    names = [p.name for p in data.find_images(tmp_path)]
    assert names == ["a.png", "b.JPG", "c.tiff"]


def test_to_uint8_rounds_and_clamps_and_save_png_uses_it(tmp_path, rgb):
    x = torch.tensor([-0.5, 0.0, 0.49 / 255, 0.51 / 255, 0.5, 254.6 / 255, 1.0, 3.0])
    assert data.to_uint8(x).tolist() == [0, 0, 0, 1, 128, 255, 255, 255]
    assert data.to_uint8(x).dtype == torch.uint8 and data.to_uint8(x.double()).tolist() == data.to_uint8(x).tolist()
    img = as_tensor(rgb)
    data.save_png(img + 0.4 / 255, tmp_path / "x.png")  # rounds back to the same 8-bit values
    torch.testing.assert_close(data.load_image(tmp_path / "x.png")[0], img)
    data.save_png(img[:1], tmp_path / "gray.png")
    assert Image.open(tmp_path / "gray.png").mode == "L"


# ------------------------------------------------------------------ datasets


def make_folder(root, rgb, n=3):
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(np.tile(rgb, (8, 6, 1))).save(root / f"{i:04d}.png")  # 320x360
    return root


def test_div2k_layout_is_found_in_each_place(tmp_path, monkeypatch, rgb):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VPDSR_DATA", raising=False)
    make_folder(tmp_path / "data" / "DIV2K" / "DIV2K_train_HR", rgb, n=2)
    assert data.find_div2k("train").resolve() == (tmp_path / "data/DIV2K/DIV2K_train_HR").resolve()
    ds = data.build_dataset("DIV2K", patch_size=64)
    assert len(ds) == 2 and ds[0].shape == (3, 64, 64)
    elsewhere = tmp_path / "datasets"
    make_folder(elsewhere / "DIV2K" / "DIV2K_valid_HR", rgb, n=1)
    monkeypatch.setenv("VPDSR_DATA", str(elsewhere))
    assert data.find_div2k("val") == elsewhere / "DIV2K" / "DIV2K_valid_HR"
    make_folder(tmp_path / "DIV2K" / "DIV2K_train_HR", rgb, n=1)  # ./DIV2K comes first
    assert data.find_div2k("train") == Path("DIV2K") / "DIV2K_train_HR"


def test_missing_div2k_lists_every_place_searched(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VPDSR_DATA", str(tmp_path / "store"))
    with pytest.raises(FileNotFoundError) as err:
        data.build_dataset("DIV2K")
    msg = str(err.value)
    for place in ["DIV2K/DIV2K_train_HR", "data/DIV2K/DIV2K_train_HR", f"{tmp_path}/store/DIV2K/DIV2K_train_HR"]:
        assert place in msg
    assert "python tools/fetch.py DIV2K" in msg and "DIV2K_train_HR.zip" in msg


def test_bad_files_are_skipped_with_a_warning(tmp_path, rgb):
    folder = make_folder(tmp_path / "imgs", rgb, n=2)
    (folder / "broken.png").write_text("not a png")
    good = (folder / "0000.png").read_bytes()
    (folder / "truncated.png").write_bytes(good[: len(good) // 2])  # a valid header, then nothing
    with pytest.warns(UserWarning) as caught:
        ds = data.build_dataset(str(folder), patch_size=64)
    messages = " ".join(str(w.message) for w in caught)
    assert "broken.png" in messages and "truncated.png" in messages  # decoded up front: both dropped at once
    assert [Path(label).name for label, _ in ds.entries] == ["0000.png", "0001.png"]
    assert ds[0].shape == (3, 64, 64)


def test_empty_folder_is_an_error_naming_it(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty"):
        data.build_dataset(str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="nowhere"):
        data.build_dataset(str(tmp_path / "nowhere"))


def test_small_images_are_reflect_padded_and_said_once(tmp_path, rgb, capsys):
    folder = tmp_path / "small"
    folder.mkdir()
    Image.fromarray(rgb[:20, :30]).save(folder / "a.png")
    Image.fromarray(rgb[:1, :5]).save(folder / "line.png")  # too thin to reflect: replicated
    ds = data.build_dataset(str(folder), patch_size=64)
    out = capsys.readouterr().out
    assert out.count("reflect-padded") == 1 and "2 of 2" in out
    for i in range(2):
        crop = ds[i]
        assert crop.shape == (3, 64, 64) and 0 <= crop.min() and crop.max() <= 1
    padded = data.pad_to_patch(torch.from_numpy(rgb[:20, :30]).permute(2, 0, 1).float(), 64)
    assert padded.shape == (3, 64, 64)
    torch.testing.assert_close(padded[:, 20], padded[:, 18])  # a mirror image about row 19


def test_demo_split_and_crops():
    train, val = data.build_dataset("demo", patch_size=96), data.build_dataset("demo", "val", patch_size=96)
    assert [e[0] for e in train.entries] == list(data.DEMO_TRAIN)
    assert [e[0] for e in val.entries] == list(data.DEMO_EVAL)
    assert not set(data.DEMO_TRAIN) & set(data.DEMO_EVAL)
    assert not set(data.DEMO_TRAIN) & set(data.DEMO_NEVER_TRAIN)
    torch.manual_seed(0)
    crops = torch.stack([train[i] for i in range(len(train))])
    assert crops.shape == (8, 3, 96, 96) and crops.dtype == torch.float32
    assert 0 <= crops.min() and crops.max() <= 1 and crops.std() > 0.05


def test_a_crop_depends_on_its_seed_only(tmp_path, rgb):
    """The images are held at 8 bits (data.to_uint8): two datasets of the same files give the same crop for
    the same (index, seed), and another seed moves it."""
    folder = make_folder(tmp_path / "imgs", rgb, n=2)
    a, b = data.build_dataset(str(folder), patch_size=48), data.build_dataset(str(folder), patch_size=48)
    assert a.entries[0][1].dtype == torch.uint8
    for item in [(0, 1), (1, 2), (1, 3)]:
        assert torch.equal(a[item], b[item])
    assert not torch.equal(a[(1, 2)], a[(1, 3)])


def test_crops_are_random_and_flipped():
    ds = data.HRCrops([("stripes", torch.arange(256, dtype=torch.uint8).expand(3, 8, -1).contiguous())], patch_size=8)
    torch.manual_seed(0)
    crops = [ds[0] for _ in range(40)]
    lefts = {round(c[0, 0, 0].item() * 255) for c in crops}
    increasing = [bool(c[0, 0, 1] > c[0, 0, 0]) for c in crops]
    assert len(lefts) > 20  # many positions
    assert 5 < sum(increasing) < 35  # flipped about half the time


def test_batches_depend_only_on_seed_and_step():
    """The data position of a resumed run is its step: batch k is the same whatever came before it, and
    whatever the number of workers."""
    ds = data.build_dataset("demo", patch_size=32)
    first = [b for b, _ in zip(data.build_loader(ds, batch_size=4, workers=0, seed=3), range(5))]
    resumed = next(iter(data.build_loader(ds, batch_size=4, workers=2, seed=3, start_step=3)))
    assert first[0].shape == (4, 3, 32, 32)
    assert torch.equal(first[3], resumed)
    assert not torch.equal(first[3], first[4])
    other = next(iter(data.build_loader(ds, batch_size=4, workers=0, seed=4)))
    assert not torch.equal(first[0], other)


def test_loader_gives_full_batches_from_a_tiny_dataset():
    ds = data.build_dataset("demo", "val", patch_size=32)  # 2 images
    loader = data.build_loader(ds, batch_size=8, workers=0, seed=0)
    assert not loader.pin_memory
    batches = [b for b, _ in zip(loader, range(3))]
    assert all(b.shape == (8, 3, 32, 32) for b in batches)


# ------------------------------------------------------------------ the command line


def test_cli_writes_versions_and_preview_and_reports_bad_files(tmp_path, rgb, capsys):
    Image.fromarray(skimage.data.coffee()[:101, :150]).save(tmp_path / "coffee.png")
    (tmp_path / "bad.jpg").write_text("nope")
    out = tmp_path / "out"
    code = degradations.main([str(tmp_path / "bad.jpg"), str(tmp_path / "coffee.png"), "-o", str(out), "--n", "3"])
    assert code == 1
    assert "bad.jpg" in capsys.readouterr().err
    for k in range(3):
        lr = data.load_image(out / f"coffee_lr{k}.png")[0]
        assert lr.shape == (3, 25, 37)  # floor(101/4) x floor(150/4)
    grid = data.load_image(out / "coffee_preview.png")[0]
    assert grid.shape[-2] > 2 * 100 and grid.shape[-1] > 2 * 148  # HR + 3 LR tiles, 2x2
    first = (out / "coffee_lr0.png").read_bytes()
    assert degradations.main([str(tmp_path / "coffee.png"), "-o", str(out), "--n", "1", "--degradation", "light"]) == 0
    assert (out / "coffee_lr0.png").read_bytes() != first  # another degradation, other LR images
    assert degradations.main([str(tmp_path / "coffee.png"), "-o", str(out), "--n", "1"]) == 0
    assert (out / "coffee_lr0.png").read_bytes() == first  # the same seed, the same LR


def test_cli_demo_photos(tmp_path):
    assert degradations.main(["--demo", "-o", str(tmp_path), "--n", "2", "--degradation", "light"]) == 0
    for name in data.DEMO_EVAL:
        assert (tmp_path / f"{name}_preview.png").exists()
        assert data.load_image(tmp_path / f"{name}_lr1.png")[0].shape[-2] == getattr(skimage.data, name)().shape[0] // 4


def test_cli_reports_an_image_smaller_than_the_scale(tmp_path, rgb, capsys):
    Image.fromarray(rgb[:3, :30]).save(tmp_path / "thin.png")
    assert degradations.main([str(tmp_path / "thin.png"), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "thin.png" in err and "smaller than the scale factor 4" in err


# ------------------------------------------------------------------ the photo corpus and tools/fetch.py


def test_photo_split_is_disjoint_and_matches_the_fetch_table():
    assert len(data.PHOTOS_EVAL) >= 8 and len(data.PHOTOS_TRAIN) >= 20
    assert not set(data.PHOTOS_TRAIN) & set(data.PHOTOS_EVAL)
    assert len(set(data.PHOTOS_TRAIN)) == len(data.PHOTOS_TRAIN)
    fetch.check_tables()  # fetch's table holds exactly the split's photos, DIV2K unpacks where data.py looks
    assert set(data.PHOTOS_TRAIN) | set(data.PHOTOS_EVAL) == set(fetch.PHOTOS)
    # no photo under two names (the same file twice would leak a held-out photo into training)
    assert len({p.sha256 for p in fetch.PHOTOS.values()}) == len(fetch.PHOTOS)
    assert len({(p.package, p.path) for p in fetch.PHOTOS.values()}) == len(fetch.PHOTOS)
    # no name shared with the demo photos: evaluate.py pairs by name (--data photos+demo)
    assert not set(fetch.PHOTOS) & set(data.DEMO_TRAIN + data.DEMO_EVAL)
    for p in fetch.PHOTOS.values():
        assert len(p.sha256) == 64 and int(p.sha256, 16) >= 0 and p.author and p.licence


def test_a_split_that_disagrees_with_the_table_is_refused(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(data, "PHOTOS_TRAIN", data.PHOTOS_TRAIN[1:] + ("newcomer",))
    with pytest.raises(RuntimeError, match=r"only in PHOTOS: \['aitzgorri'\]; only in the split: \['newcomer'\]"):
        fetch.check_tables()
    assert fetch.main(["credits", "-o", str(tmp_path / "c.md")]) == 1
    assert "disagree" in capsys.readouterr().err and not (tmp_path / "c.md").exists()


def test_credits_file_lists_every_photo(tmp_path, monkeypatch):
    """docs/CREDITS.md is the table in tools/fetch.py, written by `python tools/fetch.py credits`: never edited
    apart."""
    credits = (Path(__file__).parent.parent / "docs" / "CREDITS.md").read_text()
    assert credits == fetch.credits_markdown()
    assert "python tools/fetch.py photos" in credits and "python tools/fetch.py credits" in credits
    for name, p in fetch.PHOTOS.items():
        assert f"| {name} | {'eval' if name in data.PHOTOS_EVAL else 'train'} | {p.author} | {p.licence} |" in credits
    assert fetch.main(["credits", "-o", str(tmp_path / "c.md")]) == 0
    assert (tmp_path / "c.md").read_text() == credits
    monkeypatch.setattr(fetch, "CREDITS", tmp_path / "docs" / "CREDITS.md")  # the default: docs/CREDITS.md
    (tmp_path / "docs").mkdir()
    assert fetch.main(["credits"]) == 0 and (tmp_path / "docs" / "CREDITS.md").read_text() == credits


def fake_package(tmp_path, files):
    """A real .deb (built by dpkg-deb) holding `files` {path inside the package: PIL image}."""
    import subprocess

    root = tmp_path / "pkgroot"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text("Package: fake-wallpapers\nVersion: 1.0\nArchitecture: all\n"
                                             "Maintainer: nobody <nobody@example.org>\nDescription: test\n")
    for path, im in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        im.save(root / path, quality=95)
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(root), str(tmp_path / "fake.deb")],
                   check=True, capture_output=True)
    return tmp_path / "fake.deb"


@pytest.fixture
def fake_corpus(tmp_path, monkeypatch):
    """Two photos in one fake package (and a split of those two); `apt-get download` replaced by a copy of
    that .deb."""
    import shutil
    import subprocess

    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed")
    big = Image.fromarray(np.ascontiguousarray(np.tile(skimage.data.astronaut(), (2, 5, 1))))  # 2560 × 1024
    small = Image.fromarray(skimage.data.coffee())
    deb = fake_package(tmp_path, {"usr/share/a.jpg": big, "usr/share/b.jpg": small})
    files = tmp_path / "unpacked"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(files)], check=True)
    photos = {n: fetch.Photo("fake-wallpapers", f"usr/share/{f}", fetch.sha256_file(files / "usr/share" / f), "me",
                             "CC0-1.0") for n, f in (("big", "a.jpg"), ("small", "b.jpg"))}
    monkeypatch.setattr(fetch, "PHOTOS", photos)
    monkeypatch.setattr(data, "PHOTOS_TRAIN", ("big",))
    monkeypatch.setattr(data, "PHOTOS_EVAL", {"small": (0, 0)})
    calls = []
    real_run = subprocess.run

    def run(cmd, cwd=None, **kw):
        if cmd[:2] == ["apt-get", "download"]:
            calls.append(cmd[-1])
            shutil.copy(deb, Path(cwd) / f"{cmd[-1]}_1.0_all.deb")
            return subprocess.CompletedProcess(cmd, 0, "", "")
        return real_run(cmd, cwd=cwd, **kw)

    monkeypatch.setattr(fetch.subprocess, "run", run)
    monkeypatch.setattr(fetch.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    return photos, calls


def test_fetch_checks_resizes_and_is_a_no_op_when_done(tmp_path, fake_corpus, monkeypatch, capsys):
    photos, calls = fake_corpus
    root = fetch.fetch_photos(tmp_path / "photos")
    assert calls == ["fake-wallpapers"]
    big = Image.open(root / "big.png")
    assert big.size == (fetch.PHOTO_LONG_SIDE, round(1024 * fetch.PHOTO_LONG_SIDE / 2560))  # long side 2040, aspect
    assert Image.open(root / "small.png").size == (600, 400)  # already small: unchanged
    monkeypatch.setenv("VPDSR_DATA", str(tmp_path))  # the command line fetches into data_root()/photos
    assert fetch.main(["photos"]) == 0 and "2 photos in" in capsys.readouterr().out
    assert calls == ["fake-wallpapers"]  # nothing fetched the second time
    assert [p.name for p in data.find_photos("train")] == ["big.png"]


def test_fetch_refuses_a_changed_file_by_name(tmp_path, fake_corpus, monkeypatch):
    photos, _ = fake_corpus
    monkeypatch.setitem(fetch.PHOTOS, "small", fetch.Photo(photos["small"].package, photos["small"].path, "0" * 64,
                                                           "me", "x"))
    with pytest.raises(RuntimeError, match=r"small \(fake-wallpapers: usr/share/b.jpg: its SHA-256 differs\)"):
        fetch.fetch_photos(tmp_path / "photos")
    assert (tmp_path / "photos" / "big.png").is_file() and not (tmp_path / "photos" / "small.png").exists()


def test_fetch_without_apt_names_the_alternatives(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(fetch.shutil, "which", lambda tool: None)
    with pytest.raises(RuntimeError, match="apt-get.*--data /path/to/photos.*DIV2K"):
        fetch.fetch_photos(tmp_path / "photos")
    monkeypatch.setenv("VPDSR_DATA", str(tmp_path / "empty"))
    assert fetch.main(["photos"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot fetch the photo corpus") and "Traceback" not in err


def test_unfetched_corpus_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.setenv("VPDSR_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="python tools/fetch.py photos"):
        data.build_dataset("photos")
    with pytest.raises(FileNotFoundError, match="python tools/fetch.py photos"):
        data.eval_images("photos+demo")


def test_photos_and_demo_join_with_plus(tmp_path, monkeypatch):
    """--data photos+demo trains on both; the held-out photos are evaluated on their fixed crop."""
    monkeypatch.setenv("VPDSR_DATA", str(tmp_path))
    (tmp_path / "photos").mkdir()
    arr = np.ascontiguousarray(np.tile(skimage.data.astronaut(), (3, 4, 1)))  # 2048 wide, 1536 high
    arr[::7] = 0  # rows that tell crops apart
    Image.fromarray(arr).save(tmp_path / "one.png")
    for name in data.PHOTOS_TRAIN + tuple(data.PHOTOS_EVAL):
        (tmp_path / "photos" / f"{name}.png").hardlink_to(tmp_path / "one.png")
    ds = data.build_dataset("photos+demo", patch_size=32)
    assert len(ds) == len(data.PHOTOS_TRAIN) + len(data.DEMO_TRAIN)
    stems = {Path(e[0]).stem for e in ds.entries}
    assert stems >= set(data.PHOTOS_TRAIN) and not stems & set(data.PHOTOS_EVAL)
    named = dict(data.eval_images("photos+demo"))
    assert set(named) == set(data.PHOTOS_EVAL) | set(data.DEMO_EVAL)
    full = torch.from_numpy(arr).permute(2, 0, 1).float() / 255
    for name, (x, y) in data.PHOTOS_EVAL.items():
        torch.testing.assert_close(named[name], full[:, y : y + data.EVAL_CROP, x : x + data.EVAL_CROP])


def test_div2k_fetch_takes_the_official_archives_with_their_checksums(tmp_path, monkeypatch, rgb):
    import torchvision.datasets.utils

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VPDSR_DATA", raising=False)
    calls = []

    def fake_download(url, download_root, md5=None, remove_finished=False, **kw):
        calls.append((url, download_root, md5))
        make_folder(Path(download_root) / url.rsplit("/", 1)[1].removesuffix(".zip"), rgb, n=1)

    monkeypatch.setattr(torchvision.datasets.utils, "download_and_extract_archive", fake_download)
    monkeypatch.setattr(fetch, "reachable", lambda url, timeout=5.0: True)
    assert fetch.main(["DIV2K"]) == 0
    assert calls == [("http://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_train_HR.zip", "DIV2K",
                      "bdc2d9338d4e574fe81bf7d158758658"),
                     ("http://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_valid_HR.zip", "DIV2K",
                      "9fcdda83005c5e5997799b69f955ff88")]
    assert len(data.build_dataset("DIV2K", patch_size=32)) == 1 and len(data.build_dataset("DIV2K", "val")) == 1
    fetch.fetch_div2k()  # there now: nothing fetched
    assert len(calls) == 2


def unreachable(monkeypatch):
    """No server answers (and none may be asked twice: each check must come before any download)."""
    asked = []
    monkeypatch.setattr(fetch, "reachable", lambda url, timeout=5.0: asked.append(url) or False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return asked


def test_div2k_without_a_network_fails_at_once_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VPDSR_DATA", raising=False)
    asked = unreachable(monkeypatch)
    assert fetch.main(["DIV2K"]) == 1
    err = capsys.readouterr().err
    assert len(asked) == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert "data.vision.ee.ethz.ch cannot be reached" in err and "--data photos" in err


def test_hub_downloads_without_a_network_fail_at_once(monkeypatch, capsys):
    argv, instead = ["clip", "ViT-B-32:openai"], "--clip ViT-B-32:openai:/path/to/"
    import huggingface_hub

    asked = unreachable(monkeypatch)
    for name in ("snapshot_download", "list_repo_files", "hf_hub_download"):  # nothing may be downloaded
        monkeypatch.setattr(huggingface_hub, name, lambda *a, **k: pytest.fail("downloaded without a network"))
    assert fetch.main(argv) == 1
    err = capsys.readouterr().err
    assert asked == [huggingface_hub.constants.ENDPOINT] and "Traceback" not in err
    assert err.startswith("error: cannot download") and "cannot be reached" in err and instead in err
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # offline by choice: not even a connection is tried
    assert fetch.main(argv) == 1 and len(asked) == 1
    assert "HF_HUB_OFFLINE is set" in capsys.readouterr().err


def test_clip_names_are_checked_before_any_network(monkeypatch, capsys):
    asked = unreachable(monkeypatch)
    assert fetch.main(["clip", "ViT-B-32"]) == 1 and "openai" in capsys.readouterr().err  # no tag: the tags
    assert fetch.main(["clip", "NoSuchNet:openai"]) == 1 and "no model 'NoSuchNet'" in capsys.readouterr().err
    assert asked == []


def test_hub_downloads_fetch_only_what_the_core_reads(monkeypatch, capsys, tmp_path):
    """With the hub reachable (faked): clip takes the weights of its tag and says where they are."""
    import open_clip

    monkeypatch.setattr(fetch, "reachable", lambda url, timeout=5.0: True)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(open_clip, "download_pretrained", lambda cfg: str(tmp_path / "clip.safetensors"))
    assert fetch.main(["clip", "ViT-B-32:openai"]) == 0
    assert f"ViT-B-32:openai: {tmp_path / 'clip.safetensors'}" in capsys.readouterr().out
