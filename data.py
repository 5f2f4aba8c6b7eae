"""
data.py: the photos and the training data: reading and writing images, the demo photos, the photo corpus
(fetched from Debian's packages) and their splits, DIV2K, and the endless stream of random HR crops a
training run consumes.

    python data.py --fetch photos                                 # the corpus, once (about a minute)

    dataset = build_dataset("demo", "train", patch_size=64)      # or "photos", "DIV2K", a folder, "photos+demo"
    loader = build_loader(dataset, batch_size=8, workers=0, seed=0)
    hr = next(iter(loader))                                       # (8, 3, 64, 64) in [0, 1]

The crops are HR only: the LR inputs are made from them inside each training step, on the GPU, by
degrade.py. Batch k of a run is a pure function of (seed, k) (`StepBatches`), which is what lets an
interrupted run resume exactly.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from runtime import reachable, sha256_file

# torchvision is imported lazily where used (the DIV2K download): it makes `import data` ~2 s slower in
# every DataLoader worker and test.

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}

# The split of the demo photos, the one table every script uses (train.py --data demo trains on DEMO_TRAIN;
# evaluate.py and study.py --data demo measure on DEMO_EVAL). The photos ship with scikit-image.
DEMO_TRAIN = ("astronaut", "coffee", "stereo_motorcycle", "hubble_deep_field", "immunohistochemistry",
              "brick", "grass", "gravel")
DEMO_EVAL = ("chelsea", "rocket")
# Never trained on, kept for evaluating on photos the recipe was not chosen on: motorcycle_right is the twin
# of stereo_motorcycle's left view (a near copy of a training photo); the synthetic images are not photos;
# matplotlib's sample images (matplotlib.cbook.get_sample_data: grace_hopper.jpg, ...) are held out too.
DEMO_NEVER_TRAIN = ("motorcycle_right", "checkerboard", "binary_blobs", "horse", "logo", "text",
                    "matplotlib sample images")

# ---------------------------------------------------------------------------------------------------
# The photo corpus (--data photos): freely licensed photographs from Debian's wallpaper packages
# ---------------------------------------------------------------------------------------------------
# Eight demo photos are memorised, not learned: a network trained on them gains on its own training photos
# and nothing on others. These 37 photographs (animals, plants close up, landscapes, water, buildings,
# objects, textures, dusk) are what a small model can learn super-resolution from. They are fetched from
# Debian's archive (`apt-get download`, no root needed), checked against the SHA-256 below, and stored as
# PNGs with a long side of at most PHOTO_LONG_SIDE pixels (DIV2K's size): `python data.py --fetch photos`.
# Left out of those packages: renders, vector art, gradients and paintings (they are not photographs).
# docs/CREDITS.md lists every photo with its author and licence.


@dataclass(frozen=True)
class Photo:
    package: str  # the Debian package that ships it
    path: str  # its path inside the package
    sha256: str  # of that file, as the package ships it: a changed file is refused by name
    author: str
    licence: str  # as the package's copyright file (or, for Plasma's, the wallpaper's metadata) states it


PHOTOS = {
    "aitzgorri": Photo("lomiri-wallpapers-16.04", "usr/share/backgrounds/aitzgorri_by_Aitzol_Berasategi.jpg",
        "66268e7b48f8854d36a28765fac6e23ec1aee251daa6da1f64715f201020ad36", "Aitzol Berasategi", "CC-BY-4.0"),
    "bridge": Photo("lomiri-wallpapers-16.04", "usr/share/backgrounds/Bridge_by_Sander_Klootwijk.jpg",
        "bd86b081f9975e2b83527f71e49b9271a8ab40885428395969d9f7d834d7f050", "Sander Klootwijk", "CC-BY-SA-4.0"),
    "brushes": Photo("lomiri-wallpapers-16.04", "usr/share/backgrounds/Picture_1A_by_freespace.jpg",
        "89e86af38d04daaef975665dc2127e9fa76f0fd68f4eea105a2d0ae3390b010b", 'Trevor "Freespace"', "CC-BY-4.0"),
    "clock": Photo("lomiri-wallpapers-16.04", "usr/share/backgrounds/greentock_by_Peter_Nerlich.jpg",
        "e7b20e2db9dcd6e2b278ca55873c2110b35d89cd38b04d0b18728726888e6889", "Peter Nerlich", "CC-BY-SA-4.0"),
    "dandelions": Photo("lomiri-wallpapers-16.04", "usr/share/backgrounds/seeding_by_Clements_Engelhardt.jpg",
        "a5634d1ab5e41a3568e92d4a894a500c92b891f9ff734e50bd224d6e185a605f", "Clemens Engelhardt", "CC0-1.0"),
    "dogs": Photo("lomiri-wallpapers-16.04", "usr/share/backgrounds/friends_by_Aitzol_Berasategi.jpg",
        "cc40e313c74e421edffe3403def413c16878ce14661cce7ec5915baeab35538d", "Aitzol Berasategi", "CC-BY-4.0"),
    "dragonfly": Photo("lomiri-wallpapers-16.04", "usr/share/backgrounds/Dragonfly_by_Bolly.jpg",
        "af5af17841009732def24b09bb1e669a1b09d2b4bdeee7812c371101c30d2bb3", '"Bolly"', "CC-BY-SA-4.0"),
    "fig": Photo("lomiri-wallpapers-16.04", "usr/share/backgrounds/Picture_0B_by_freespace.jpg",
        "c8c0ab18e48d9e0419fe42881112137f3afafc27dfddc29ec3a6d54c56d225ad", 'Trevor "Freespace"', "CC-BY-4.0"),
    "lamp": Photo("lomiri-wallpapers-16.04", "usr/share/backgrounds/free_by_Peter_Nerlich.jpg",
        "85a5453c2fed514c75973016f3d862aca62eb7ca087618822469274ac1092373", "Peter Nerlich", "CC-BY-SA-4.0"),
    "picos": Photo("lomiri-wallpapers-16.04", "usr/share/backgrounds/picosdeeuropa_by_Aitzol_Berasategi.jpg",
        "414d0072b2f6f2c555deafeaef6e45c4fed6fa9ad26eba6560ca8803959cf97a", "Aitzol Berasategi", "CC-BY-4.0"),
    "stream": Photo("lomiri-wallpapers-16.04", "usr/share/backgrounds/life_by_Aitzol_Berasategi.jpg",
        "4c119350ead80201fe256850c3d316309ddfb4bdf10b235ce982dcde0c667c05", "Aitzol Berasategi", "CC-BY-4.0"),
    "sunset": Photo("lomiri-wallpapers-16.04", "usr/share/backgrounds/sunset_by_Aitzol_Berasategi.jpg",
        "474dab6a4b9f94dc76c29dfe30e9f5db4af0fd2e33fe5d695f8152b371efca18", "Aitzol Berasategi", "CC-BY-4.0"),
    "wine": Photo("lomiri-wallpapers-16.04", "usr/share/backgrounds/Wine_by_Jakkub_Mede.jpg",
        "d2e96e6d4da40dd804b3d0ce295e94de04a2d7d9b6785d42cd9d92ba58bced74", "Jakub Mede", "CC-BY-4.0"),
    "nuthatch": Photo("lomiri-wallpapers-20.04", "usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg",
        "6572410c09f4492c74ccadde133565a14c0161617d5917d4c820c66d65a44ba7", "Lukas Baubkus", "CC-BY-SA-3.0"),
    "drop": Photo("mate-backgrounds", "usr/share/backgrounds/mate/nature/Aqua.jpg",
        "5c30118205982da441bf7e6a1ada636a8a0be879408140b3148280c665ed6bce", "Charles Barbin", "GPL-2+"),
    "dune": Photo("mate-backgrounds", "usr/share/backgrounds/mate/nature/Dune.jpg",
        "8a67c2cb0be8c46b70c237311a4fa4d2b4ac7d39568135384787801fa5cc9a91", "Marco Cogoni, Hylke Bons", "GPL-2+"),
    "ladybird": Photo("mate-backgrounds", "usr/share/backgrounds/mate/nature/LadyBird.jpg",
        "e35a9a4126ef969c90b29c038058c5a575a20eadd84106a37bf1fa9931e7b61d", "Charles Barbin", "GPL-2+"),
    "leaf": Photo("mate-backgrounds", "usr/share/backgrounds/mate/nature/Blinds.jpg",
        "f7aac0dcc2e06d0491643e84df3da1d9db7c4610f58806a880d56e074799f600", "Lennart Poettering, Andrea Cimitan",
        "GPL-2+"),
    "marigold": Photo("mate-backgrounds", "usr/share/backgrounds/mate/nature/Garden.jpg",
        "d3095ee09d425ef23d27155412136cf14fc3c9af76ca58b452f55e23da324e78", "Charles Barbin", "GPL-2+"),
    "meadow": Photo("mate-backgrounds", "usr/share/backgrounds/mate/nature/GreenMeadow.jpg",
        "8fa0de0aa4089f7319c9fb7a6d006d4cab6023e8c8853731557cff53567b4832", "Timothy Schellhase, Lapo Calamandrei",
        "GPL-2+"),
    "orange_flower": Photo("mate-backgrounds", "usr/share/backgrounds/mate/nature/FreshFlower.jpg",
        "972b0a0c4e5e3fa93f4f244fc84bc64b121a5eac3aaa5856f1308c1f38a02f8e", "Jens Ansorg", "GPL-2+"),
    "planks": Photo("mate-backgrounds", "usr/share/backgrounds/mate/nature/Wood.jpg",
        "19c78500ac00a622e19907ab9cc7d06d46fe08c4a6142759a84195696150ec07", "Jean-François Fortin Tam", "GPL-2+"),
    "raindrops": Photo("mate-backgrounds", "usr/share/backgrounds/mate/nature/RainDrops.jpg",
        "3e4ea9671c28c90a86cf67b3db9daf18c4741587c596333a7529ca589aaa0c16", '"blackcombwhistler07"', "GPL-2+"),
    "seeds": Photo("mate-backgrounds", "usr/share/backgrounds/mate/nature/TwoWings.jpg",
        "665e5abf8a5399070a91a9a8e455fe071e5b61697ff78fdeda4e9843ef545aeb", "Charles Barbin, Hylke Bons", "GPL-2+"),
    "storm": Photo("mate-backgrounds", "usr/share/backgrounds/mate/nature/Storm.jpg",
        "77ca53077831d3237f73393a91fc879158abc046d852941c26e90de336356957", "Sergey Nazarov", "GPL-2+"),
    "yellow_flower": Photo("mate-backgrounds", "usr/share/backgrounds/mate/nature/YellowFlower.jpg",
        "254da96256acb7add685679775a04d1e4a5bc8cd13e5a5a3d61351ce198a5306", "Charles Barbin", "GPL-2+"),
    "boardwalk": Photo("plasma-workspace-wallpapers", "usr/share/wallpapers/BytheWater/contents/images/2560x1600.jpg",
        "c272434ef39f2abf1ed48a15a8910088020f3165329a5092f3940ec9464bc05f", "Maciej Wiklo", "LGPL-3"),
    "boats": Photo("plasma-workspace-wallpapers", "usr/share/wallpapers/EveningGlow/contents/images/2560x1600.jpg",
        "586682dcb362b9f620068f10138f87d0d3649939aef238adc5807cb951976a7a", "Ian Hex", "LGPL-3"),
    "cups": Photo("plasma-workspace-wallpapers", "usr/share/wallpapers/ColorfulCups/contents/images/2560x1600.jpg",
        "6e0f3a72feb5a4a9fec191b77e34874c3c69e2d93040deb3f07773e73385023d", "Dmitri Popov", "LGPL-3"),
    "dusk_lake": Photo("plasma-workspace-wallpapers", "usr/share/wallpapers/DarkestHour/contents/images/2560x1600.jpg",
        "8e3703fae3a3c217b1fc2b399b706cd3720584268d071ba153e4809daa55f1ce", "Risto Saukonpää", "LGPL-3"),
    "facade": Photo("plasma-workspace-wallpapers", "usr/share/wallpapers/Grey/contents/images/2560x1600.jpg",
        "88c31d8944b7e6935d1b9a296654c692f0772cb512491713eb30a972a604c0ed", "Sigi Sagi", "LGPL-3"),
    "fallen_leaf": Photo("plasma-workspace-wallpapers", "usr/share/wallpapers/FallenLeaf/contents/images/2560x1600.jpg",
        "95603a6560c7e8d50e0e03b3f4adbe39c5258c72528e74e4ecaea1daf4e499de", "Martin Klapetek", "LGPL-3"),
    "forest_path": Photo("plasma-workspace-wallpapers", "usr/share/wallpapers/Path/contents/images/2560x1600.jpg",
        "7477457d7f17b736259f1b021864778ad4ba802cf3214e6728181ff29126bba8", "Risto Saukonpää", "LGPL-3"),
    "kite": Photo("plasma-workspace-wallpapers", "usr/share/wallpapers/Kite/contents/images/2560x1600.jpg",
        "bdca288ce296a981e80659c021cf707caddc702c0c8d4247e60bd618476d47f8", "Risto Saukonpää", "LGPL-3"),
    "pier": Photo("plasma-workspace-wallpapers", "usr/share/wallpapers/ColdRipple/contents/images/2560x1600.jpg",
        "05bef6722fc0ed81292cceb3ed026c38d17e510f3c84be7d68610c2b1a723c3f", "Risto Saukonpää", "LGPL-3"),
    "plants": Photo("plasma-workspace-wallpapers", "usr/share/wallpapers/OneStandsOut/contents/images/2560x1600.jpg",
        "cb507baf1dafdcae362264f3aba9483ed4be5f6c9fdd770f0ec0920c6d9e80fd", "Risto Saukonpää", "LGPL-3"),
    "summer_night": Photo("plasma-workspace-wallpapers",
                          "usr/share/wallpapers/summer_1am/contents/images/2560x1600.jpg",
        "c868b50789591dd42910153c768053f1ba0a98cb36bbfc2b7a96a1045d0477f8", "Risto Saukonpää", "LGPL-3"),
}
PHOTO_LONG_SIDE = 2040

# The split of the corpus. PHOTOS_EVAL is held out, never trained on: one photo per kind of content, each
# with the top-left corner (x, y) of the fixed EVAL_CROP × EVAL_CROP window evaluate.py measures (chosen
# on the subject, so that a CPU evaluation of all of them takes minutes, not hours). Every other photo
# trains.
EVAL_CROP = 512
PHOTOS_EVAL = {
    "dogs": (256, 448),  # animals
    "marigold": (1152, 256),  # plants close up
    "picos": (896, 384),  # landscape
    "boats": (768, 448),  # water
    "facade": (512, 256),  # buildings and lines
    "plants": (1024, 512),  # texture
    "dusk_lake": (256, 640),  # dusk, low light
    "brushes": (256, 256),  # objects, strong colour
}
PHOTOS_TRAIN = tuple(name for name in PHOTOS if name not in PHOTOS_EVAL)

DIV2K_ARCHIVES = {  # split: (folder, url, md5), as published by the DIV2K authors
    "train": ("DIV2K_train_HR", "http://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_train_HR.zip",
              "bdc2d9338d4e574fe81bf7d158758658"),
    "val": ("DIV2K_valid_HR", "http://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_valid_HR.zip",
            "9fcdda83005c5e5997799b69f955ff88"),
}


def load_image(path):
    """Read any image file as (rgb, alpha): rgb a float32 (3,H,W) tensor in [0,1], alpha (1,H,W) or None.

    Grayscale, palette, CMYK, 16-bit and EXIF-rotated images all come out as upright RGB. Raises
    ValueError naming the file when it cannot be read.
    """
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)  # phone photos store their rotation as a tag
            im.load()
    except Exception as e:  # PIL raises many types (UnidentifiedImageError, OSError, SyntaxError, ...)
        raise ValueError(f"cannot read image {path}: {e}") from None
    alpha = None
    if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
        im = im.convert("RGBA")
        alpha = torch.from_numpy(np.asarray(im.getchannel("A"), dtype=np.float32) / 255)[None]
    if im.mode.startswith("I"):  # 16-bit (or 32-bit integer) grayscale
        arr = np.asarray(im, dtype=np.float32) / 65535
        rgb = torch.from_numpy(arr).clamp(0, 1)[None].expand(3, -1, -1).contiguous()
    elif im.mode == "F":  # floating-point grayscale, assumed in [0,1]
        rgb = torch.from_numpy(np.array(im, dtype=np.float32)).clamp(0, 1)[None].expand(3, -1, -1).contiguous()
    else:  # 1, L, P, RGB(A), CMYK, YCbCr, ...: Pillow converts (16-bit RGB is read at 8 bits)
        rgb = torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1).contiguous()
    return rgb, alpha


def save_png(img, path):
    """Write a float (C,H,W) image in [0,1] (C = 1, 3 or 4: gray, RGB, RGBA) as an 8-bit PNG."""
    arr = (img.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().permute(1, 2, 0).numpy()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr).save(path)


def find_images(root):
    """All image files under root, recursively, in a stable order."""
    return sorted(p for p in Path(root).rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def demo_images(split="train"):
    """The scikit-image demo photos of a split, as [(name, uint8 tensor (3,H,W))]."""
    import skimage.data

    out = []
    for name in {"train": DEMO_TRAIN, "val": DEMO_EVAL}[split]:
        arr = getattr(skimage.data, name)()
        arr = arr[0] if isinstance(arr, tuple) else arr  # stereo_motorcycle = (left, right, disparity)
        arr = np.repeat(arr[..., None], 3, axis=2) if arr.ndim == 2 else arr[..., :3]
        out.append((name, torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).contiguous()))
    return out


def data_root():
    """Where downloaded data lives: $VPDSR_DATA if set, else the user's cache folder."""
    if os.environ.get("VPDSR_DATA"):
        return Path(os.environ["VPDSR_DATA"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vpdsr"


ALTERNATIVES = ("Alternatives: train on a folder of your own photos (--data /path/to/photos), or on DIV2K "
                "(--data DIV2K --download, or unpacked by hand into data/DIV2K).")


def fetch_photos(root=None):
    """Fetch the photo corpus into root (default data_root()/photos) as PNGs; a no-op when all are there.

    Each Debian package is fetched with `apt-get download` and unpacked with `dpkg-deb -x` (neither needs
    root); every photo is checked against its SHA-256 in PHOTOS, scaled down (Lanczos) to a long side of at
    most PHOTO_LONG_SIDE pixels, and written as an 8-bit PNG. Raises RuntimeError saying what is missing
    and what to use instead.
    """
    from tqdm import tqdm

    root = Path(root) if root else data_root() / "photos"
    missing = [name for name in PHOTOS if not (root / f"{name}.png").is_file()]
    if not missing:
        return root
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"cannot fetch the photo corpus: `{tool}` is not on this machine (the photos come "
                               f"from Debian's packages). {ALTERNATIVES}")
    root.mkdir(parents=True, exist_ok=True)
    refused = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for package in tqdm(sorted({PHOTOS[n].package for n in missing}), desc="Debian packages", unit="pkg"):
            # (no retries, a short timeout: a machine without the archive fails in seconds, not minutes)
            got = subprocess.run(["apt-get", "download", "-o", "Acquire::Retries=0", "-o",
                                  "Acquire::http::Timeout=20", package], cwd=tmp, capture_output=True, text=True)
            debs = list(tmp.glob(f"{package}_*.deb"))
            if got.returncode != 0 or not debs:
                why = (got.stderr.strip().splitlines() or ["no .deb file written"])[-1]
                raise RuntimeError(f"cannot fetch the Debian package {package} (`apt-get download {package}`: "
                                   f"{why}). {ALTERNATIVES}")
            subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(tmp / "files")], check=True)
            debs[0].unlink()  # (the packages are up to 90 MB each)
        for name in tqdm(missing, desc="photos", unit="img"):
            photo, src = PHOTOS[name], tmp / "files" / PHOTOS[name].path
            if not src.is_file() or sha256_file(src) != photo.sha256:
                refused.append(f"{name} ({photo.package}: {photo.path}: "
                               + ("not in the package" if not src.is_file() else "its SHA-256 differs") + ")")
                continue
            with Image.open(src) as im:
                im = ImageOps.exif_transpose(im).convert("RGB")
                im.thumbnail((PHOTO_LONG_SIDE, PHOTO_LONG_SIDE), Image.Resampling.LANCZOS)  # keeps the aspect
                im.save(root / f"{name}.png.tmp", format="PNG")
            os.replace(root / f"{name}.png.tmp", root / f"{name}.png")  # never a half-written photo
    if refused:
        raise RuntimeError("refused photos whose file is not the one this table was written for (a newer "
                           "package?):\n  " + "\n  ".join(refused) + f"\nThe others are in {root}. {ALTERNATIVES}")
    return root


def find_photos(split="train"):
    """The corpus's PNGs of a split ("train", or "val": the held-out photos, whole); an error that says how
    to fetch them when they are not there."""
    root = data_root() / "photos"
    names = PHOTOS_TRAIN if split == "train" else tuple(PHOTOS_EVAL)
    paths = [root / f"{name}.png" for name in names]
    missing = [p.stem for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"the photo corpus is not in {root} ({len(missing)} of {len(paths)} {split} photos missing, e.g. "
            f"{missing[0]}). Fetch it (about 200 MB of Debian packages, a minute): python data.py --fetch photos "
            "(or train.py --data photos --download). Set VPDSR_DATA=/path/to/datasets to keep it elsewhere.")
    return paths


def div2k_candidates():
    roots = [Path("DIV2K"), Path("data") / "DIV2K"]
    if os.environ.get("VPDSR_DATA"):
        roots.append(Path(os.environ["VPDSR_DATA"]) / "DIV2K")
    return roots


def find_div2k(split="train", download=False):
    """The folder of DIV2K HR images of a split, in the official layout <root>/DIV2K_train_HR/*.png."""
    folder, url, md5 = DIV2K_ARCHIVES[split]
    for root in div2k_candidates():
        if (root / folder).is_dir():
            return root / folder
    if download:
        from torchvision.datasets.utils import download_and_extract_archive

        root = div2k_candidates()[-1] if os.environ.get("VPDSR_DATA") else div2k_candidates()[0]
        server = urlparse(url).hostname
        if not reachable(url, timeout=5.0):  # (fail at once on a machine without internet)
            raise RuntimeError(f"cannot download DIV2K: its server {server} cannot be reached from this machine. "
                               f"Download {url} elsewhere and unzip it into {root}, or train on the photo corpus "
                               "(--data photos --download) or a folder of your own photos (--data /path/to/photos).")
        try:
            download_and_extract_archive(url, str(root), md5=md5)  # checks the md5 before extracting
        except OSError as e:  # URLError, a connection reset, a full disk, ...
            raise RuntimeError(f"downloading DIV2K from {server} failed: {e}") from None
        return root / folder
    searched = "\n".join(f"  {r / folder}" for r in div2k_candidates())
    raise FileNotFoundError(
        f"DIV2K ({split}) not found. Searched:\n{searched}\n"
        f"Download it with --download (fetches {url}, ~3.5 GB for train), or by hand:\n"
        f"  mkdir -p data/DIV2K && cd data/DIV2K && wget {url} && unzip {url.rsplit('/', 1)[1]}\n"
        f"Set VPDSR_DATA=/path/to/datasets to keep it elsewhere (it then lives in $VPDSR_DATA/DIV2K)."
    )


def resolve_sources(data, split="train", download=False):
    """What `--data` names: 'demo', 'photos', 'DIV2K', a folder of images, or several joined by '+'
    ('photos+demo'). Returns (description, sources) where each source is a file path or an in-memory
    (name, uint8 tensor) pair."""
    if "+" in data:
        parts = [resolve_sources(d, split, download) for d in data.split("+")]
        return " + ".join(name for name, _ in parts), [s for _, sources in parts for s in sources]
    if data == "demo":
        return f"scikit-image demo photos ({split})", demo_images(split)
    if data == "photos":
        if download:
            fetch_photos()
        return f"the photo corpus ({split}, {data_root() / 'photos'})", find_photos(split)
    if data.lower() == "div2k":
        folder = find_div2k(split, download)
    else:
        folder = Path(data)
        if not folder.is_dir():
            raise FileNotFoundError(f"--data {data}: no such folder (and not 'demo', 'photos' or 'DIV2K')")
    return str(folder), find_images(folder)


def eval_images(data):
    """The named evaluation sets, as [(name, float (3,H,W) in [0,1])]: demo (the held-out demo photos),
    demo-train (the demo's training photos, to see what a model memorised), photos (the held-out corpus
    photos, each its fixed EVAL_CROP² window), or several joined by '+' ('photos+demo'). None if `data`
    names no such set (it is then a folder, or DIV2K)."""
    parts = data.split("+")
    if not all(p in ("demo", "demo-train", "photos") for p in parts):
        return None
    out = []
    for part in parts:
        if part == "photos":
            for path in find_photos("val"):
                x, y = PHOTOS_EVAL[path.stem]
                out.append((path.stem, load_image(path)[0][:, y : y + EVAL_CROP, x : x + EVAL_CROP]))
        else:
            out += [(name, img.float() / 255) for name, img in demo_images("val" if part == "demo" else "train")]
    return out


def pad_to_patch(img, patch_size):
    """Reflect-pad (bottom/right) an image smaller than the patch, repeating reflections as needed."""
    while img.shape[-2] < patch_size or img.shape[-1] < patch_size:
        ph = min(patch_size - img.shape[-2], img.shape[-2] - 1)
        pw = min(patch_size - img.shape[-1], img.shape[-1] - 1)
        if ph <= 0 and pw <= 0:  # a 1-pixel side cannot reflect
            img = F.pad(img[None], (0, max(0, patch_size - img.shape[-1]), 0,
                                    max(0, patch_size - img.shape[-2])), mode="replicate")[0]
            break
        img = F.pad(img[None], (0, max(pw, 0), 0, max(ph, 0)), mode="reflect")[0]
    return img


class HRCrops(torch.utils.data.Dataset):
    """Random patch_size × patch_size crops (random horizontal flip) of HR images, float (3,P,P) in [0,1].

    Images are held in memory as 8-bit tensors when they fit in `cache_gb` (decoded once, by a thread
    pool, and shared with the DataLoader workers), else decoded from disk for each crop. Horizontal flips
    only, as Real-ESRGAN (use_hflip=True, use_rot=False): photos have an up.

    min_scale < 1 is scale augmentation: each crop is a window of side P/s, s uniform in [min_scale, 1],
    scaled down to P × P (antialiased bicubic), as if the photo had been taken at a lower resolution. A
    small crop of a large photo is mostly smooth; scaled down, the same crop holds more edges and texture.
    """

    def __init__(self, sources, patch_size=256, cache_gb=8.0, name="images", min_scale=1.0):
        self.patch_size, self.name, self.min_scale = patch_size, name, min_scale
        entries = []  # (label, path or None, uint8 tensor or None, (h, w))
        for src in sources:
            if isinstance(src, tuple):
                entries.append((src[0], None, src[1], tuple(src[1].shape[-2:])))
                continue
            try:
                with Image.open(src) as im:  # reads the header only
                    w, h = im.size
                entries.append((str(src), Path(src), None, (h, w)))
            except Exception as e:
                warnings.warn(f"skipping unreadable image {src}: {e}", stacklevel=2)
        self.cached = sum(3 * h * w for *_, (h, w) in entries) <= cache_gb * 2**30
        if self.cached:
            entries = self._decode_all(entries)
        if not entries:
            raise ValueError(f"no readable images in {name}")
        small = sum(min(hw) < patch_size for *_, hw in entries)
        if small:
            print(f"{name}: {small} of {len(entries)} images are smaller than {patch_size}x{patch_size} "
                  "and are reflect-padded")
        self.entries = entries

    @staticmethod
    def _decode_all(entries):
        def decode(entry):  # runs in a thread: Pillow releases the GIL while decoding
            label, path, img, hw = entry
            if img is not None:
                return entry
            try:
                return label, path, (load_image(path)[0] * 255).round().to(torch.uint8), hw
            except ValueError as err:
                return str(err)

        results = ThreadPoolExecutor(min(16, os.cpu_count() or 1)).map(decode, entries)
        if sum(e[2] is None for e in entries) > 50:  # a progress bar for real datasets, not for the demo
            from tqdm import tqdm

            results = tqdm(results, total=len(entries), desc="decoding images into memory")
        decoded = []
        for r in results:
            if isinstance(r, str):
                warnings.warn(f"skipping {r}", stacklevel=3)
            else:
                decoded.append(r)
        return decoded

    def __len__(self):
        return len(self.entries)

    def __getitem__(self, item):
        """item: an index (crop drawn from torch's global RNG), or (index, seed) for a reproducible crop."""
        i, seed = item if isinstance(item, tuple) else (item, None)
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        _, path, img, _ = self.entries[i]
        if img is None:  # not cached: decode now, and fall back to the next image if the file is bad
            try:
                img = load_image(path)[0]
            except ValueError as err:
                warnings.warn(f"skipping {err}")
                return self[(i + 1) % len(self), seed]
        p = w = self.patch_size  # w: the side of the window cut from the photo
        if self.min_scale < 1:  # (drawn only when on: runs without it keep their random streams)
            s = self.min_scale + (1 - self.min_scale) * torch.rand((), generator=g).item()
            w = min(round(p / s), *img.shape[-2:])
        if min(img.shape[-2:]) < w:  # rare: an image smaller than the patch
            img = pad_to_patch(to_float(img), w)
        top = torch.randint(img.shape[-2] - w + 1, (), generator=g).item()
        left = torch.randint(img.shape[-1] - w + 1, (), generator=g).item()
        crop = to_float(img[:, top : top + w, left : left + w])  # crop first: cached images are 8-bit
        if w != p:
            crop = F.interpolate(crop[None], size=(p, p), mode="bicubic", antialias=True)[0].clamp(0, 1)
        if torch.rand((), generator=g) < 0.5:
            crop = crop.flip(-1)
        return crop.contiguous()


class StepBatches(torch.utils.data.Sampler):
    """An endless sequence of batches, batch k a pure function of (seed, k): [(image index, crop seed)] × B.

    Training is counted in steps, not epochs, so the data position is just the step: a run resumed at step
    k sees exactly the batches an uninterrupted run would, whatever the number of workers. Images are
    drawn with replacement (a folder smaller than a batch still fills it). Under DDP each of the `world`
    processes takes its own slice of one global batch.
    """

    def __init__(self, n_images, batch_size, seed=0, start_step=0, rank=0, world=1):
        self.n, self.b, self.seed = n_images, batch_size, seed
        self.start, self.rank, self.world = start_step, rank, world

    def __iter__(self):
        step = self.start
        while True:
            g = torch.Generator().manual_seed(hash((self.seed, step)) & (2**63 - 1))
            idx = torch.randint(self.n, (self.world * self.b,), generator=g)
            seeds = torch.randint(2**62, (self.world * self.b,), generator=g)
            mine = slice(self.rank * self.b, (self.rank + 1) * self.b)
            yield list(zip(idx[mine].tolist(), seeds[mine].tolist()))
            step += 1


def to_float(img):
    return img.float() / 255 if img.dtype == torch.uint8 else img


def build_dataset(data, split="train", patch_size=256, download=False, cache_gb=8.0, min_scale=1.0):
    """The HR crop dataset for `--data` (demo / photos / DIV2K / a folder, or several joined by '+')."""
    name, sources = resolve_sources(data, split, download)
    if not sources:
        raise ValueError(f"no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) found in {name}")
    return HRCrops(sources, patch_size, cache_gb, name=name, min_scale=min_scale)


def build_loader(dataset, batch_size, workers=4, seed=0, device="cpu", start_step=0, rank=0, world=1):
    """An endless DataLoader that keeps a GPU fed: worker processes kept alive, pinned memory, a few
    batches prefetched per worker. Batch k depends only on (seed, k): see StepBatches."""
    return torch.utils.data.DataLoader(
        dataset, batch_sampler=StepBatches(len(dataset), batch_size, seed, start_step, rank, world),
        num_workers=workers, pin_memory=torch.device(device).type == "cuda",
        persistent_workers=workers > 0, prefetch_factor=4 if workers > 0 else None,
    )


# ---------------------------------------------------------------------------------------------------
# Command line: fetch data, write the credits
# ---------------------------------------------------------------------------------------------------


def credits_markdown():
    """docs/CREDITS.md: every photo of the corpus with its author, licence and source (python data.py --credits)."""
    lines = ["# Credits: the photo corpus", "",
             "`python data.py --fetch photos` fetches these photographs from Debian's packages, checks each file "
             "against its SHA-256 in `data.py` and stores it as a PNG scaled down to a long side of at most "
             f"{PHOTO_LONG_SIDE} pixels. Held-out photos (never trained on) are marked *eval*. The licence is the "
             "one the package's copyright file states (for `plasma-workspace-wallpapers`, the wallpaper's own "
             "metadata; the package's copyright file says GPL-2+). This file is written by "
             "`python data.py --credits`.", "",
             "| photo | split | author | licence | Debian package | path in the package |", "|---|---|---|---|---|---|"]
    for name, p in sorted(PHOTOS.items()):
        split = "eval" if name in PHOTOS_EVAL else "train"
        lines.append(f"| {name} | {split} | {p.author} | {p.licence} | {p.package} | `{p.path}` |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description="data.py: fetch training data, or write the corpus's credits")
    ap.add_argument("--fetch", choices=["photos", "DIV2K"], help="fetch a dataset into $VPDSR_DATA (else "
                    f"{data_root()}; DIV2K: ./DIV2K unless VPDSR_DATA is set); a no-op when it is there")
    ap.add_argument("--credits", metavar="FILE", help="write the photo corpus's credits (docs/CREDITS.md) to FILE")
    args = ap.parse_args(argv)
    if not args.fetch and not args.credits:
        ap.error("nothing to do: give --fetch photos, --fetch DIV2K or --credits FILE")
    if args.credits:
        Path(args.credits).write_text(credits_markdown())
        print(f"wrote {args.credits}")
    try:
        if args.fetch == "photos":
            root = fetch_photos()
            print(f"the photo corpus: {len(PHOTOS)} photos in {root} ({len(PHOTOS_TRAIN)} train, "
                  f"{len(PHOTOS_EVAL)} held out)")
        elif args.fetch == "DIV2K":
            for split in ("train", "val"):
                print(f"DIV2K {split}: {find_div2k(split, download=True)}")
    except (RuntimeError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
