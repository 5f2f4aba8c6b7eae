"""
tools/fetch.py: the data and weights the project downloads, fetched once, before the core scripts need them.
The core never downloads (but for the metrics' weights: python metrics.py --fetch-weights): a missing file is
an error that names the command here that fetches it.

    python tools/fetch.py photos                   # the photo corpus (--data photos): 170 MB of Debian packages, ~35 s
    python tools/fetch.py DIV2K                    # DIV2K's HR images (--data DIV2K): 3.5 GB train + 0.4 GB val
    python tools/fetch.py clip ViT-B-32:openai     # open_clip weights (--clip NAME:TAG), into the Hugging Face cache
    python tools/fetch.py credits [-o FILE]        # docs/CREDITS.md, from the corpus's table below

Each is a no-op when its files are there. $VPDSR_DATA moves the photos and DIV2K (data.data_root); $HF_HOME
moves the Hugging Face cache. A server that cannot be reached is an error within seconds, which says what to
do instead (a machine without internet: fetch on another one and copy the files over).
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from PIL import Image, ImageOps  # noqa: E402
from tqdm import tqdm  # noqa: E402

import data  # noqa: E402
from runtime import sha256_file  # noqa: E402

# ---------------------------------------------------------------------------------------------------
# The photo corpus (--data photos): freely licensed photographs from Debian's wallpaper packages
# ---------------------------------------------------------------------------------------------------
# Fetched from Debian's archive (`apt-get download`, no root needed), checked against the SHA-256 below, and
# stored as PNGs with a long side of at most PHOTO_LONG_SIDE pixels (DIV2K's size). Left out of those packages:
# renders, vector art, gradients and paintings (they are not photographs). data.py holds the split (which
# photos are held out for evaluation); docs/CREDITS.md lists every photo with its author and licence.


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

ALTERNATIVES = ("Alternatives: train on a folder of your own photos (--data /path/to/photos), or on DIV2K "
                "(python tools/fetch.py DIV2K, or unpacked by hand into data/DIV2K: see data.find_div2k).")

DIV2K_ARCHIVES = {  # split: (url, md5), as published by the DIV2K authors
    "train": ("http://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_train_HR.zip", "bdc2d9338d4e574fe81bf7d158758658"),
    "val": ("http://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_valid_HR.zip", "9fcdda83005c5e5997799b69f955ff88"),
}

CREDITS = REPO / "docs" / "CREDITS.md"


def check_tables():
    """The tables here must describe what data.py uses: the corpus's photos are exactly data.py's split, and
    each DIV2K archive unpacks into the folder data.find_div2k looks for."""
    split = set(data.PHOTOS_TRAIN) | set(data.PHOTOS_EVAL)
    if set(PHOTOS) != split:
        raise RuntimeError("tools/fetch.py's PHOTOS and data.py's split (PHOTOS_TRAIN + PHOTOS_EVAL) disagree: "
                           f"only in PHOTOS: {sorted(set(PHOTOS) - split) or 'none'}; "
                           f"only in the split: {sorted(split - set(PHOTOS)) or 'none'}")
    for split_name, (url, _) in DIV2K_ARCHIVES.items():
        if not url.endswith(f"/{data.DIV2K_FOLDERS[split_name]}.zip"):
            raise RuntimeError(f"DIV2K {split_name}: {url} does not unpack into {data.DIV2K_FOLDERS[split_name]}")


def fetch_photos(root=None):
    """Fetch the photo corpus into root (default data_root()/photos) as PNGs; a no-op when all are there.

    Each Debian package is fetched with `apt-get download` and unpacked with `dpkg-deb -x` (neither needs
    root); every photo is checked against its SHA-256 in PHOTOS, scaled down (Lanczos) to a long side of at
    most PHOTO_LONG_SIDE pixels, and written as an 8-bit PNG. Raises RuntimeError saying what is missing
    and what to use instead.
    """
    check_tables()
    root = Path(root) if root else data.data_root() / "photos"
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


def credits_markdown():
    """docs/CREDITS.md: every photo of the corpus with its author, licence and source."""
    check_tables()
    lines = ["# Credits: the photo corpus", "",
             "`python tools/fetch.py photos` fetches these photographs from Debian's packages, checks each file "
             "against its SHA-256 in `tools/fetch.py` and stores it as a PNG scaled down to a long side of at most "
             f"{PHOTO_LONG_SIDE} pixels. Held-out photos (never trained on; the split is `data.py`'s) are marked "
             "*eval*. The licence is the one the package's copyright file states (for `plasma-workspace-wallpapers`, "
             "the wallpaper's own metadata; the package's copyright file says GPL-2+). This file is written by "
             "`python tools/fetch.py credits`.", "",
             "| photo | split | author | licence | Debian package | path in the package |", "|---|---|---|---|---|---|"]
    for name, p in sorted(PHOTOS.items()):
        split = "eval" if name in data.PHOTOS_EVAL else "train"
        lines.append(f"| {name} | {split} | {p.author} | {p.licence} | {p.package} | `{p.path}` |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------
# Downloads from servers: DIV2K, CLIP weights
# ---------------------------------------------------------------------------------------------------


def reachable(url, timeout=5.0):
    """Whether the server of `url` accepts a connection within `timeout` seconds."""
    parts = urlparse(url)
    try:
        socket.create_connection((parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)),
                                 timeout=timeout).close()
        return True
    except OSError:
        return False


def require_hub(what, instead):
    """Fail at once, saying what to do `instead`, unless the Hugging Face hub answers (and HF_HUB_OFFLINE is
    not set): huggingface_hub would otherwise retry for half a minute before failing."""
    from huggingface_hub import constants

    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    if offline or not reachable(constants.ENDPOINT, timeout=3.0):
        why = "HF_HUB_OFFLINE is set" if offline else f"the Hugging Face hub ({constants.ENDPOINT}) cannot be reached"
        raise RuntimeError(f"cannot download {what}: {why}. Run this command on a machine with internet and copy "
                           f"its Hugging Face cache ({constants.HF_HUB_CACHE}) here, or {instead}.")


def fetch_div2k():
    """DIV2K's train and val HR images, unpacked where data.find_div2k looks: $VPDSR_DATA/DIV2K if set,
    else ./DIV2K. Each archive's md5 is checked before it is unpacked (and it is deleted after)."""
    from torchvision.datasets.utils import download_and_extract_archive

    root = data.data_root() / "DIV2K" if os.environ.get("VPDSR_DATA") else Path("DIV2K")
    todo = {}
    for split, archive in DIV2K_ARCHIVES.items():
        try:
            print(f"DIV2K {split}: {data.find_div2k(split)} (already there)")
        except FileNotFoundError:
            todo[split] = archive
    if todo and not reachable(next(iter(todo.values()))[0]):
        urls = " and ".join(url for url, _ in todo.values())
        raise RuntimeError(f"cannot download DIV2K: its server {urlparse(urls).hostname} cannot be reached from "
                           f"this machine. Download {urls} elsewhere and unzip them into {root}, or train on the "
                           "photo corpus (python tools/fetch.py photos, then --data photos) or on a folder of "
                           "your own photos (--data /path/to/photos).")
    for split, (url, md5) in todo.items():
        try:
            download_and_extract_archive(url, str(root), md5=md5, remove_finished=True)
        except (OSError, RuntimeError) as e:  # URLError, a connection reset, a full disk, a wrong md5, ...
            raise RuntimeError(f"downloading DIV2K {split} from {url} failed: {e}") from None
        print(f"DIV2K {split}: {root / data.DIV2K_FOLDERS[split]}")


def fetch_clip(spec):
    """open_clip's weights NAME:TAG (e.g. ViT-B-32:openai) into the Hugging Face cache, where --clip NAME:TAG
    finds them (losses.load_clip reads the cache only)."""
    import open_clip

    name, _, tag = spec.partition(":")
    if name not in open_clip.list_models():
        raise ValueError(f"clip {spec}: open_clip has no model '{name}' (see open_clip.list_models())")
    cfg = open_clip.get_pretrained_cfg(name, tag) if tag else {}
    if not cfg:
        known = ", ".join(open_clip.list_pretrained_tags_by_model(name)) or "none"
        raise ValueError(f"clip {spec}: give NAME:TAG, TAG one of {name}'s weights: {known}")
    instead = f"pass a file downloaded elsewhere: --clip {spec}:/path/to/open_clip_model.safetensors"
    if cfg.get("hf_hub"):
        require_hub(f"the CLIP weights {spec}", instead)
    elif not reachable(cfg["url"]):
        raise RuntimeError(f"cannot download the CLIP weights {spec}: {urlparse(cfg['url']).hostname} cannot be "
                           f"reached from this machine; {instead}.")
    try:
        path = open_clip.download_pretrained(cfg)
    except Exception as e:  # HTTP errors, a full disk, ...: huggingface_hub and urllib raise many types
        raise RuntimeError(f"downloading the CLIP weights {spec} failed: {e}") from None
    print(f"{spec}: {path}")
    if not cfg.get("hf_hub"):  # open_clip's own cache, which the core does not search
        print(f"(not in the Hugging Face cache: pass the file, --clip {spec}:{path})")


def main(argv=None):
    ap = argparse.ArgumentParser(description="\n\n".join(__doc__.strip().split("\n\n")[:2]),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True, metavar="{photos,DIV2K,clip,credits}")
    sub.add_parser("photos", help="the photo corpus, into $VPDSR_DATA/photos if set, else ~/.cache/vpdsr/photos")
    sub.add_parser("DIV2K", help="DIV2K's HR images, into $VPDSR_DATA/DIV2K if set, else ./DIV2K")
    clip = sub.add_parser("clip", help="open_clip weights into the Hugging Face cache")
    clip.add_argument("spec", metavar="NAME:TAG", help="e.g. ViT-B-32:openai")
    credits = sub.add_parser("credits", help="write the photo corpus's credits")
    credits.add_argument("-o", "--out", metavar="FILE", help="where to write them (default: docs/CREDITS.md)")
    args = ap.parse_args(argv)
    try:
        check_tables()
        if args.what == "photos":
            root = fetch_photos()
            print(f"the photo corpus: {len(PHOTOS)} photos in {root} ({len(data.PHOTOS_TRAIN)} train, "
                  f"{len(data.PHOTOS_EVAL)} held out)")
        elif args.what == "DIV2K":
            fetch_div2k()
        elif args.what == "clip":
            fetch_clip(args.spec)
        else:
            out = Path(args.out) if args.out else CREDITS
            out.write_text(credits_markdown())
            print(f"wrote {out}")
    except (RuntimeError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
