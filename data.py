"""
data.py: the photos and the training data: reading and writing images, the demo photos, the photo corpus's
split, DIV2K, and the endless stream of random HR crops a training run consumes.

    dataset = build_dataset("demo", "train", patch_size=64)      # or "photos", "DIV2K", a folder, "photos+demo"
    hr = next(iter(build_loader(dataset, batch_size=8, workers=0, seed=0)))          # (8, 3, 64, 64) in [0, 1]

The crops are HR only: the LR inputs are made from them inside each training step, on the training device (the GPU), by
degrade.py. Batch k of a run is a pure function of (seed, k) (`StepBatches`), which is what lets an
interrupted run resume exactly. Nothing here downloads: missing data is an error naming the command that
fetches it (`python tools/fetch.py photos`, once, about 35 s, for the photo corpus).
"""

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from tqdm import tqdm

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}


def load_image(path):
    """Read any image file as (rgb, alpha): rgb a float32 (3,H,W) tensor in [0,1], alpha (1,H,W) or None.
    Grayscale, palette, CMYK, 16-bit and EXIF-rotated images all come out as upright RGB; a file that cannot
    be read is a ValueError naming it."""
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
    if im.mode.startswith("I") or im.mode == "F":  # 16-bit (or 32-bit integer) grayscale; float, in [0,1]
        arr = np.asarray(im, dtype=np.float32) / (1 if im.mode == "F" else 65535)
        rgb = torch.from_numpy(arr).clamp(0, 1)[None].expand(3, -1, -1).contiguous()
    else:  # 1, L, P, RGB(A), CMYK, YCbCr, ...: Pillow converts (16-bit RGB is read at 8 bits)
        rgb = torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1).contiguous()
    return rgb, alpha


def to_uint8(img):
    """The one 8-bit quantizer of the project: an image in [0,1] (any float dtype) as a uint8 tensor."""
    return (img.detach().clamp(0, 1) * 255).round().to(torch.uint8)


def save_png(img, path):
    """Write a float (C,H,W) image in [0,1] (C = 1, 3 or 4: gray, RGB, RGBA) as an 8-bit PNG."""
    arr = to_uint8(img.float()).cpu().permute(1, 2, 0).numpy()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr).save(path)


def find_images(root):
    """All image files under root, recursively, in a stable order."""
    return sorted(p for p in Path(root).rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


# --- Where the photos are: the demo photos, the photo corpus, DIV2K, a folder

# The split of the demo photos (they ship with scikit-image), the one table every script uses: train.py
# --data demo trains on DEMO_TRAIN, evaluate.py --data demo measures on DEMO_EVAL.
DEMO_TRAIN = ("astronaut", "coffee", "stereo_motorcycle", "hubble_deep_field", "immunohistochemistry",
              "brick", "grass", "gravel")
DEMO_EVAL = ("chelsea", "rocket")
# Never trained on: motorcycle_right is the twin of stereo_motorcycle's left view (a near copy of a training
# photo); the synthetic images are not photos; matplotlib's sample images (grace_hopper.jpg, ...) are held out too.
DEMO_NEVER_TRAIN = ("motorcycle_right", "checkerboard", "binary_blobs", "horse", "logo", "text",
                    "matplotlib sample images")

# The photo corpus (--data photos). Eight demo photos are memorised, not learned: a network trained on them
# gains on its own training photos and nothing on others. These 37 freely licensed photographs from Debian's
# wallpaper packages (animals, plants close up, landscapes, water, buildings, objects, textures, dusk) are what
# a small model can learn super-resolution from. `python tools/fetch.py photos` (which holds their table of
# files, hashes, authors and licences: docs/CREDITS.md) stores them in data_root()/photos as PNGs with a long
# side of at most 2040 pixels (DIV2K's size). PHOTOS_EVAL is held out, never trained on: one photo per kind of
# content, each with the top-left corner (x, y) of the EVAL_CROP × EVAL_CROP window evaluate.py measures (on
# the subject, so that a CPU evaluates all of them in minutes, not hours). The other 29 train.
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
PHOTOS_TRAIN = ("aitzgorri", "bridge", "clock", "dandelions", "dragonfly", "fig", "lamp", "stream", "sunset", "wine",
                "nuthatch", "drop", "dune", "ladybird", "leaf", "meadow", "orange_flower", "planks", "raindrops",
                "seeds", "storm", "yellow_flower", "boardwalk", "cups", "fallen_leaf", "forest_path", "kite", "pier",
                "summer_night")

DIV2K_FOLDERS = {"train": "DIV2K_train_HR", "val": "DIV2K_valid_HR"}  # as the official archives unpack


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
    """Where fetched data lives: $VPDSR_DATA if set, else the user's cache folder."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(os.environ.get("VPDSR_DATA") or Path(cache) / "vpdsr")


def find_photos(split="train"):
    """The corpus's PNGs of a split ("train", or "val": the held-out photos, whole), or an error naming the fetch."""
    root = data_root() / "photos"
    paths = [root / f"{name}.png" for name in (PHOTOS_TRAIN if split == "train" else PHOTOS_EVAL)]
    if missing := [p.stem for p in paths if not p.is_file()]:
        raise FileNotFoundError(
            f"the photo corpus is not in {root} ({len(missing)} of {len(paths)} {split} photos missing, e.g. "
            f"{missing[0]}). Fetch it (about 170 MB of Debian packages, 35 s): python tools/fetch.py photos. "
            "Set VPDSR_DATA=/path/to/datasets to keep it elsewhere.")
    return paths


def find_div2k(split="train"):
    """The folder of DIV2K HR images of a split, in the official layout <root>/DIV2K_train_HR/*.png, searched
    in ./DIV2K, ./data/DIV2K and $VPDSR_DATA/DIV2K (python tools/fetch.py DIV2K: the last if set, else the first)."""
    folder = DIV2K_FOLDERS[split]
    roots = [Path("DIV2K"), Path("data/DIV2K")] + ([data_root() / "DIV2K"] if os.environ.get("VPDSR_DATA") else [])
    for root in roots:
        if (root / folder).is_dir():
            return root / folder
    searched = "\n".join(f"  {r / folder}" for r in roots)
    raise FileNotFoundError(
        f"DIV2K ({split}) not found. Searched:\n{searched}\nFetch it (~3.5 GB for train): python tools/fetch.py DIV2K, "
        f"or by hand:\n  mkdir -p data/DIV2K && cd data/DIV2K && wget http://data.vision.ee.ethz.ch/cvl/DIV2K/"
        f"{folder}.zip && unzip {folder}.zip\nSet VPDSR_DATA=/path/to/datasets to keep it in $VPDSR_DATA/DIV2K.")


def resolve_sources(data, split="train"):
    """What `--data` names ('demo', 'photos', 'DIV2K', a folder of images, or several joined by '+': 'photos+demo'),
    as (description, sources), each source a file path or an in-memory (name, uint8 tensor) pair."""
    if "+" in data:
        parts = [resolve_sources(d, split) for d in data.split("+")]
        return " + ".join(name for name, _ in parts), [s for _, sources in parts for s in sources]
    if data == "demo":
        return f"scikit-image demo photos ({split})", demo_images(split)
    if data == "photos":
        return f"the photo corpus ({split}, {data_root() / 'photos'})", find_photos(split)
    folder = image_folder(data, split)
    return str(folder), find_images(folder)


def image_folder(data, split):
    """The folder `--data` names: DIV2K's of the split, or a folder of images."""
    folder = find_div2k(split) if data.lower() == "div2k" else Path(data)
    if not folder.is_dir():
        raise FileNotFoundError(f"--data {data}: no such folder, nor a set --help names (demo, photos, DIV2K, ...)")
    return folder


def eval_images(data):
    """The HR images evaluate.py measures, as [(name, float (3,H,W) in [0,1], or the file's path)]: demo (the
    held-out demo photos), demo-train (the demo's training photos, to see what a model memorised), photos (the
    held-out corpus photos, each its fixed EVAL_CROP² window), DIV2K (its validation set), a folder, or several
    joined by '+' ('photos+demo')."""
    out = []
    for part in data.split("+"):
        if part == "photos":
            for path in find_photos("val"):
                x, y = PHOTOS_EVAL[path.stem]
                out.append((path.stem, load_image(path)[0][:, y : y + EVAL_CROP, x : x + EVAL_CROP]))
        elif part in ("demo", "demo-train"):
            out += [(name, img.float() / 255) for name, img in demo_images("val" if part == "demo" else "train")]
        else:
            out += [(p.stem, p) for p in find_images(image_folder(part, "val"))]
    return out


# --- The training crops

def pad_to_patch(img, p):
    """Reflect-pad (bottom/right) an image smaller than the p × p patch, repeating reflections as needed."""
    while min(img.shape[-2:]) < p:
        h, w = img.shape[-2:]
        ph, pw = max(0, min(p - h, h - 1)), max(0, min(p - w, w - 1))  # (a reflection adds at most side − 1)
        if ph == pw == 0:  # a 1-pixel side cannot reflect: replicate it
            return F.pad(img[None], (0, max(0, p - w), 0, max(0, p - h)), mode="replicate")[0]
        img = F.pad(img[None], (0, pw, 0, ph), mode="reflect")[0]
    return img


class HRCrops(torch.utils.data.Dataset):
    """Random patch_size × patch_size crops (random horizontal flip) of HR images, float (3,P,P) in [0,1].

    The images are decoded once, by a thread pool, and held in memory as 8-bit tensors, which the DataLoader
    workers share (DIV2K's 800 training images, at most 2040 pixels a side, take several GB); a file that cannot
    be read is skipped with a warning. Horizontal flips only, as Real-ESRGAN (use_hflip=True, use_rot=False):
    photos have an up."""

    def __init__(self, sources, patch_size=256, name="images"):
        self.patch_size, self.name = patch_size, name

        def decode(src):  # -> (label, uint8 (3,H,W)), or None for a file that cannot be read
            if isinstance(src, tuple):  # an in-memory (name, uint8 tensor) pair
                return src
            try:
                return str(src), to_uint8(load_image(src)[0])
            except ValueError as err:
                warnings.warn(f"skipping {err}", stacklevel=2)

        with ThreadPoolExecutor(min(16, os.cpu_count() or 1)) as pool:  # (Pillow releases the GIL while decoding)
            decoded = list(tqdm(pool.map(decode, sources), "decoding images into memory", total=len(sources),
                                disable=len(sources) <= 50))
        self.entries = [e for e in decoded if e is not None]  # [(label, uint8 tensor)]
        if not self.entries:
            raise ValueError(f"no readable images ({', '.join(sorted(IMAGE_EXTENSIONS))}) in {name}")
        if small := sum(min(img.shape[-2:]) < patch_size for _, img in self.entries):
            print(f"{name}: {small} of {len(self.entries)} images are smaller than {patch_size}²: reflect-padded")

    def __len__(self):
        return len(self.entries)

    def __getitem__(self, item):
        """item: an index (crop drawn from torch's global RNG), or (index, seed) for a reproducible crop."""
        i, seed = item if isinstance(item, tuple) else (item, None)
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        p = self.patch_size
        img = pad_to_patch(self.entries[i][1], p)  # (rare: an image smaller than the patch)
        top = torch.randint(img.shape[-2] - p + 1, (), generator=g).item()
        left = torch.randint(img.shape[-1] - p + 1, (), generator=g).item()
        crop = img[:, top : top + p, left : left + p].float() / 255  # (cropped first, then made float)
        return (crop.flip(-1) if torch.rand((), generator=g) < 0.5 else crop).contiguous()


class StepBatches(torch.utils.data.Sampler):
    """An endless sequence of batches, batch k a pure function of (seed, k): [(image index, crop seed)] × B.

    Training is counted in steps, not epochs, so the data position is just the step: a run resumed at step k
    sees exactly the batches an uninterrupted run would, whatever the number of workers. Images are drawn with
    replacement (a folder smaller than a batch still fills it)."""

    def __init__(self, n_images, batch_size, seed=0, start_step=0):
        self.n, self.b, self.seed, self.start = n_images, batch_size, seed, start_step

    def __iter__(self):
        step = self.start
        while True:
            g = torch.Generator().manual_seed(hash((self.seed, step)) & (2**63 - 1))
            idx = torch.randint(self.n, (self.b,), generator=g)
            yield list(zip(idx.tolist(), torch.randint(2**62, (self.b,), generator=g).tolist()))
            step += 1


def build_dataset(data, split="train", patch_size=256):
    """The HR crop dataset for `--data` (demo / photos / DIV2K / a folder, or several joined by '+')."""
    name, sources = resolve_sources(data, split)
    return HRCrops(sources, patch_size, name=name)


def build_loader(dataset, batch_size, workers=4, seed=0, device="cpu", start_step=0):
    """An endless DataLoader that keeps a GPU fed: worker processes kept alive, pinned memory, a few
    batches prefetched per worker. Batch k depends only on (seed, k): see StepBatches."""
    return torch.utils.data.DataLoader(
        dataset, batch_sampler=StepBatches(len(dataset), batch_size, seed, start_step),
        num_workers=workers, pin_memory=torch.device(device).type == "cuda",
        persistent_workers=workers > 0, prefetch_factor=4 if workers > 0 else None,
    )
