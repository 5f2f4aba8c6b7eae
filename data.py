"""
data.py: the photos and the training data: reading and writing images, the demo photos and their split,
DIV2K, and the endless stream of random HR crops a training run consumes.

    dataset = build_dataset("demo", "train", patch_size=64)      # or "DIV2K", or a folder of images
    loader = build_loader(dataset, batch_size=8, workers=0, seed=0)
    hr = next(iter(loader))                                       # (8, 3, 64, 64) in [0, 1]

The crops are HR only: the LR inputs are made from them inside each training step, on the GPU, by
degrade.py. Batch k of a run is a pure function of (seed, k) (`StepBatches`), which is what lets an
interrupted run resume exactly.
"""

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

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
        download_and_extract_archive(url, str(root), md5=md5)  # checks the md5 before extracting
        return root / folder
    searched = "\n".join(f"  {r / folder}" for r in div2k_candidates())
    raise FileNotFoundError(
        f"DIV2K ({split}) not found. Searched:\n{searched}\n"
        f"Download it with --download (fetches {url}, ~3.5 GB for train), or by hand:\n"
        f"  mkdir -p data/DIV2K && cd data/DIV2K && wget {url} && unzip {url.rsplit('/', 1)[1]}\n"
        f"Set VPDSR_DATA=/path/to/datasets to keep it elsewhere (it then lives in $VPDSR_DATA/DIV2K)."
    )


def resolve_sources(data, split="train", download=False):
    """What `--data` names: 'demo', 'DIV2K', or a folder of images. Returns (description, sources) where
    each source is a file path or an in-memory (name, uint8 tensor) pair."""
    if data == "demo":
        return f"scikit-image demo photos ({split})", demo_images(split)
    if data.lower() == "div2k":
        folder = find_div2k(split, download)
    else:
        folder = Path(data)
        if not folder.is_dir():
            raise FileNotFoundError(f"--data {data}: no such folder (and not 'demo' or 'DIV2K')")
    return str(folder), find_images(folder)


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
    """

    def __init__(self, sources, patch_size=256, cache_gb=8.0, name="images"):
        self.patch_size, self.name = patch_size, name
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
        p = self.patch_size
        if min(img.shape[-2:]) < p:  # rare: an image smaller than the patch
            img = pad_to_patch(to_float(img), p)
        top = torch.randint(img.shape[-2] - p + 1, (), generator=g).item()
        left = torch.randint(img.shape[-1] - p + 1, (), generator=g).item()
        crop = to_float(img[:, top : top + p, left : left + p])  # crop first: cached images are 8-bit
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


def build_dataset(data, split="train", patch_size=256, download=False, cache_gb=8.0):
    """The HR crop dataset for `--data` (demo / DIV2K / a folder)."""
    name, sources = resolve_sources(data, split, download)
    if not sources:
        raise ValueError(f"no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) found in {name}")
    return HRCrops(sources, patch_size, cache_gb, name=name)


def build_loader(dataset, batch_size, workers=4, seed=0, device="cpu", start_step=0, rank=0, world=1):
    """An endless DataLoader that keeps a GPU fed: worker processes kept alive, pinned memory, a few
    batches prefetched per worker. Batch k depends only on (seed, k): see StepBatches."""
    return torch.utils.data.DataLoader(
        dataset, batch_sampler=StepBatches(len(dataset), batch_size, seed, start_step, rank, world),
        num_workers=workers, pin_memory=torch.device(device).type == "cuda",
        persistent_workers=workers > 0, prefetch_factor=4 if workers > 0 else None,
    )
