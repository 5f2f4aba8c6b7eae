"""
study.py: the measured study behind the teacher recipe (docs/RESULTS.md, "The recipe study").

Trains small teachers with train.py, one change at a time, and measures each on the held-out demo photos
(chelsea, rocket; 3 LR draws each), over several training seeds:

    python study.py --group param                    # x₀ / residual / precond output × T = 15 / 4
    python study.py --group kappa --group weight --group lr --group crop
    python study.py --table                          # the table of everything measured so far
    python study.py --sigma-data                     # σ_d, the std of x₀ − y₀ on the training crops
    python study.py --ablation TEACHER.pt --seeds 0 1    # the student losses, added one at a time
    python study.py --generalise                     # corpus vs demo photos, per degradation (held-out photos)

For each teacher it reports, as mean ± half the range over training seeds (the LR draws and the noise ε are
the same for every candidate, so candidates are compared on the same inputs):

    1call      the network's single call at t = T (≈ the posterior mean)
    det, anc   the full deterministic (SinSR) and ancestral (ResShift) samplers
    metrics    PSNR, lf_psnr (structure: PSNR after 4×4 average pooling), hf_ratio (detail energy) and
               hf_corr (is the detail the real detail?), all on the Y channel of 8-bit images
    curves     the denoising curve: PSNR of decode(x̂₀), the network's estimate of the HR latent x₀, at
               every step t, on freshly noised inputs x_t = q_sample(x₀, y₀, t, ε) (y₀: the latent of the
               bicubic upscale, ε: Gaussian noise) and along each sampler's own path. A fresh x_t holds part of x₀
               itself, so "fresh" is an oracle the path cannot reach; where along the path the PSNR falls
               shows at which steps the sampler loses what the one call had.

Runs go to --out (default runs/study/<candidate>-s<seed>-i<steps>/, each a train.py run folder plus
study.json); the table to results/study/table.md. A finished run is not trained or measured again.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from data import demo_images
from degrade import PRESETS, degrade
import evaluate as E
from checkpoint import load_checkpoint
from model import sample_ancestral, sample_deterministic

# Candidates: train.py flags on top of `--preset tiny --data demo` (every flag not named keeps the tiny
# preset's default). Names say what differs from the first candidate of their group.
T4 = ["--diffusion-steps", "4", "--min-noise-level", "0.2"]  # ResShift's later 4-step real-SR schedule
RESSHIFT = ["--recipe", "resshift", "--diffusion-steps", "15", "--kappa", "2", "--min-noise-level", "0.04",
            "--param", "x0", "--loss-weight", "uniform", "--lr-schedule", "constant", "--lr", "1e-3",
            "--patch-size", "64"]
CANDIDATES = {
    # 1. the output parametrisation × T (everything else as ResShift)
    "x0-T15": RESSHIFT,
    "residual-T15": RESSHIFT + ["--param", "residual"],
    "precond-T15": RESSHIFT + ["--param", "precond"],
    "x0-T4": RESSHIFT + T4,
    "residual-T4": RESSHIFT + T4 + ["--param", "residual"],
    "precond-T4": RESSHIFT + T4 + ["--param", "precond"],
    # 2. the noise scale κ: ResShift's κ = 2 is for latents of standard deviation ≈ 1; the pixel latent's is
    #    ≈ 0.5 (κ = 1 keeps ResShift's relative noise), and x₀ − y₀'s only σ_d ≈ 0.2. Below κ = 1 the last
    #    noise level is κ·min_noise_level: with T = 4 and 0.2 it stays large, so one T = 4 candidate uses 0.04.
    "precond-T15-k0.5": RESSHIFT + ["--param", "precond", "--kappa", "0.5"],
    "precond-T15-k0.25": RESSHIFT + ["--param", "precond", "--kappa", "0.25"],
    "precond-T4-k0.25-m0.04": RESSHIFT + T4 + ["--param", "precond", "--kappa", "0.25", "--min-noise-level", "0.04"],
    "precond-T4-k0.1-m0.04": RESSHIFT + T4 + ["--param", "precond", "--kappa", "0.1", "--min-noise-level", "0.04"],
}
# 3.-6. one change at a time from the winner of 1.-2. (BEST): σ_d of the preconditioning, the loss weighting
# over t (a remedy for the weak middle of the denoising curve), the learning rate and its schedule; then the
# crop size from the recipe this study adopted ("pixel" = BEST with σ_d = 0.1; config.py's RECIPES["pixel"] has
# since changed σ_d, --cond and --p-last, measured on the photo corpus: `python study.py --generalise`).
BEST = "precond-T4-k0.25-m0.04"
CANDIDATES.update({
    f"{BEST}+sigma0.1": CANDIDATES[BEST] + ["--sigma-data", "0.1"],
    f"{BEST}+weight": CANDIDATES[BEST] + ["--loss-weight", "precond"],
    f"{BEST}+lr2e-4": CANDIDATES[BEST] + ["--lr", "2e-4"],
    f"{BEST}+cosine": CANDIDATES[BEST] + ["--lr-schedule", "cosine"],
    "pixel+crop128": CANDIDATES[BEST] + ["--sigma-data", "0.1", "--patch-size", "128"],
    "pixel": CANDIDATES[BEST] + ["--sigma-data", "0.1"],  # training length: --candidate pixel --iters 10000
})
GROUPS = {
    "param": ["x0-T15", "residual-T15", "precond-T15", "x0-T4", "residual-T4", "precond-T4"],
    "kappa": ["precond-T15-k0.5", "precond-T15-k0.25", "precond-T4-k0.25-m0.04", "precond-T4-k0.1-m0.04"],
    "weight": [f"{BEST}+sigma0.1", f"{BEST}+weight"],
    "lr": [f"{BEST}+lr2e-4", f"{BEST}+cosine"],
    "crop": ["pixel+crop128"],
}


def run_dir(out, name, seed, iters):
    return Path(out) / f"{name}-s{seed}-i{iters}"


def train(name, seed, iters, out, threads):
    """Train one teacher with train.py (skipped when its teacher.pt exists); returns its wall-clock seconds."""
    folder = run_dir(out, name, seed, iters)
    done = folder / "study_train.json"
    if done.exists():
        return json.loads(done.read_text())["seconds"]
    cmd = [sys.executable, "train.py", "--data", "demo", "--preset", "tiny", "--stage", "teacher",
           "--out", str(folder), "--overwrite", "--seed", str(seed), "--teacher-iters", str(iters),
           "--sample-every", str(iters), "--ckpt-every", str(iters), *CANDIDATES[name]]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TQDM_DISABLE": "1"}
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(folder / "train.log", "w") as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT, env=env)
    seconds = time.perf_counter() - t0
    done.write_text(json.dumps({"seconds": seconds, "command": " ".join(cmd)}))
    return seconds


def quantize(img):
    """As evaluate.py measures: the 8-bit PNG a method would save."""
    return (img.clamp(0, 1) * 255).round() / 255


def scores(sr, hr):
    sr = quantize(sr)
    return {"psnr": E.psnr(sr, hr), "lf_psnr": E.lf_psnr(sr, hr), "hf_ratio": E.hf_ratio(sr, hr),
            "hf_corr": E.hf_corr(sr, hr)}


class Recorder:
    """Stands in for the model inside a sampler and keeps every x̂₀ it returns: the sampler's own path."""

    def __init__(self, model):
        self.model, self.x0_hats = model, {}

    def __getattr__(self, name):
        return getattr(self.model, name)

    def __call__(self, x_t, lr, t, y0=None):
        x0_hat = self.model(x_t, lr, t, y0)
        self.x0_hats[t] = x0_hat
        return x0_hat


def eval_pairs(draws):
    """[(photo, draw, hr, lr)]: the held-out photos, cropped to a multiple of 32 (so that the tiny UNet
    needs no padding), each degraded `draws` times with seeds fixed by name and draw."""
    pairs = []
    for name, img in demo_images("val"):
        hr = img.float() / 255
        hr = hr[:, : hr.shape[1] // 32 * 32, : hr.shape[2] // 32 * 32]
        for draw in range(draws):
            lr = degrade(hr[None], PRESETS["resshift"], torch.Generator().manual_seed(E.image_seed(name, draw)))[1][0]
            pairs.append((name, draw, hr, quantize(lr)))
    return pairs


@torch.no_grad()
def measure(ckpt, pairs):
    """Every metric and curve of one teacher on every (photo, draw)."""
    model = load_checkpoint(ckpt, kind="teacher")
    T = model.cfg.T
    rows = []
    for name, draw, hr, lr in pairs:
        lr, hr_b = lr[None], hr[None]
        x0, y0 = model.encode(hr_b), model.encode_lr(lr)
        eps = torch.randn(y0.shape, generator=torch.Generator().manual_seed(E.image_seed(name, draw) + 1))
        row = {"photo": name, "draw": draw, "bicubic": scores(E.bicubic(lr[0]), hr)}
        x_T = model.prior_sample(y0, eps)
        row["1call"] = scores(model.decode(model.one_step(x_T, lr, y0))[0], hr)
        det, anc = Recorder(model), Recorder(model)
        row["det"] = scores(model.decode(sample_deterministic(det, x_T, y0, lr))[0], hr)
        g = torch.Generator().manual_seed(E.image_seed(name, draw) + 2)
        row["anc"] = scores(model.decode(sample_ancestral(anc, x_T, y0, lr, generator=g))[0], hr)
        fresh = {}
        for t in range(1, T + 1):
            x_t = model.q_sample(x0, y0, torch.tensor([t]), eps)
            fresh[t] = model(x_t, lr, t, y0)
        row["curves"] = {kind: {t: E.psnr(quantize(model.decode(x)[0]), hr) for t, x in xs.items()}
                         for kind, xs in (("fresh", fresh), ("det", det.x0_hats), ("anc", anc.x0_hats))}
        rows.append(row)
    return {"T": T, "rows": rows}


def run_one(name, seed, iters, out, draws, threads):
    folder = run_dir(out, name, seed, iters)
    result = folder / "study.json"
    if result.exists():
        return json.loads(result.read_text())
    seconds = train(name, seed, iters, out, threads)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    subprocess.run([sys.executable, __file__, "--measure", str(folder), "--draws", str(draws)], check=True, env=env)
    res = {"name": name, "seed": seed, "iters": iters, "train_seconds": seconds, **json.loads(result.read_text())}
    result.write_text(json.dumps(res))
    print(f"done: {folder} ({seconds:.0f} s training)", flush=True)
    return res


@torch.no_grad()
def sigma_data(patch_sizes=(64, 128), batches=8, batch_size=32):
    """The standard deviation of x₀ − y₀ in the pixel latent over degraded training crops: the σ_d that
    --param precond needs (printed with `python study.py --sigma-data`)."""
    from data import build_dataset
    from model import ModelConfig, SRModel

    m = SRModel(ModelConfig(preset="tiny"))
    for size in patch_sizes:
        ds, g = build_dataset("demo", "train", size), torch.Generator().manual_seed(0)
        d = []
        for k in range(batches):
            hr = torch.stack([ds[(i % len(ds), k * batch_size + i)] for i in range(batch_size)])
            hr, lr = degrade(hr, PRESETS["resshift"], g)
            d.append(m.encode(hr) - m.encode_lr(lr))
        d = torch.cat(d)
        print(f"{size}² HR crops of the demo training photos: σ_d = {d.std():.3f} "
              f"(x₀'s own standard deviation: {m.encode(hr).std():.3f})")


# ---------------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------------


def mean(xs):
    return sum(xs) / len(xs)


def cell(per_seed, digits=2):
    """mean ± half the range of the per-seed means."""
    m = mean(per_seed)
    spread = (max(per_seed) - min(per_seed)) / 2
    return f"{m:.{digits}f} ± {spread:.{digits}f}" if len(per_seed) > 1 else f"{m:.{digits}f}"


def curve_at(row, kind, t):
    """A denoising-curve value: keys are ints when measured, strings once read back from study.json."""
    curve = row["curves"][kind]
    return curve[t] if t in curve else curve[str(t)]


def table(results):
    """Markdown: one row per (candidate, iters), metrics as mean ± half-range over training seeds."""
    groups = {}
    for r in results:
        groups.setdefault((r["name"], r["iters"]), []).append(r)
    lines = ["| candidate | steps | seeds | train s | 1call PSNR | 1call lf | det PSNR | det lf | det hf_ratio | "
             "det hf_corr | anc PSNR | anc lf | anc hf_ratio | anc hf_corr | curve t=1 fresh / det / anc |",
             "|---" * 15 + "|"]
    bic = None
    for (name, iters), rs in sorted(groups.items(), key=lambda kv: (list(CANDIDATES).index(kv[0][0])
                                                                      if kv[0][0] in CANDIDATES else 99, kv[0][1])):
        def per_seed(method, key):
            return [mean([row[method][key] for row in r["rows"]]) for r in rs]

        def curve(kind, t):
            return [mean([curve_at(row, kind, t) for row in r["rows"]]) for r in rs]

        bic = bic or {k: per_seed("bicubic", k) for k in ("psnr", "lf_psnr", "hf_ratio", "hf_corr")}
        c = [cell(per_seed("1call", "psnr")), cell(per_seed("1call", "lf_psnr"))]
        for m in ("det", "anc"):
            c += [cell(per_seed(m, "psnr")), cell(per_seed(m, "lf_psnr")), cell(per_seed(m, "hf_ratio"), 3),
                  cell(per_seed(m, "hf_corr"), 3)]
        c.append(" / ".join(f"{mean(curve(k, 1)):.1f}" for k in ("fresh", "det", "anc")))
        secs = mean([r["train_seconds"] for r in rs])
        lines.append(f"| {name} | {iters} | {len(rs)} | {secs:.0f} | " + " | ".join(c) + " |")
    if bic:
        lines.append(f"\nbicubic: PSNR {mean(bic['psnr']):.2f}, lf_psnr {mean(bic['lf_psnr']):.2f}, "
                     f"hf_ratio {mean(bic['hf_ratio']):.3f}, hf_corr {mean(bic['hf_corr']):.3f}")
    return "\n".join(lines)


def curves_table(results):
    """The denoising curves, PSNR of decode(x̂₀) per t (seed-averaged): fresh | det path | anc path."""
    groups = {}
    for r in results:
        groups.setdefault((r["name"], r["iters"]), []).append(r)
    lines = []
    for (name, iters), rs in groups.items():
        T = rs[0]["T"]
        cells = []
        for t in range(T, 0, -1):
            vals = [mean([mean([curve_at(row, k, t) for row in r["rows"]]) for r in rs])
                    for k in ("fresh", "det", "anc")]
            cells.append(f"t={t}: " + "/".join(f"{v:.1f}" for v in vals))
        lines.append(f"- {name} ({iters} steps): " + ", ".join(cells))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------
# The student-loss ablation: one teacher, the same seeds and steps, the losses added one at a time
# ---------------------------------------------------------------------------------------------------

# The student-loss ablation: the shipped student's settings (from the shipped teacher, on the corpus and demo
# training photos, light degradation, lr 2e-4, 1 000 steps), one loss at a time on top of distillation, then all
# of them. ESS is run with two encoders: the offline stand-in for CLIP (ImageNet VGG16's global features) and
# the tiny random CLIP (no semantics), both at weight 1.0 so that only the encoder differs.
ABLATION_BASE = ["--data", "photos+demo", "--preset", "tiny", "--degradation", "light", "--stage", "student",
                 "--lr", "2e-4", "--student-iters", "1000", "--ckpt-every", "1000", "--sample-every", "1000",
                 "--log-every", "100"]
ABLATION = {  # train.py flags of the student stage, on top of ABLATION_BASE
    "distillation": ["--w-hfp", "0", "--w-adv", "0", "--w-ess", "0"],
    "+hfp": ["--w-adv", "0", "--w-ess", "0"],
    "+adv": ["--w-hfp", "0", "--w-ess", "0"],
    "+ess (vgg16)": ["--w-hfp", "0", "--w-adv", "0", "--w-ess", "1.0", "--clip", "vgg16"],
    "+ess (random CLIP)": ["--w-hfp", "0", "--w-adv", "0", "--w-ess", "1.0", "--clip", "random"],
    "full (vgg16 ESS)": ["--w-ess", "1.0", "--clip", "vgg16"],
}
ABLATION_KEYS = ["psnr", "lf_psnr", "ssim", "lpips", "dists", "lpips_vgg", "niqe", "hf_corr"]


def digits(key):
    return 3 if "hf_" in key or key == "ssim" else 2


def ablation_folder(out, name, seed):
    """runs/ablation/<slug>-s<seed>: "+ess (random CLIP)" -> plus-ess-random, "full (vgg16 ESS)" -> full-vgg16."""
    base, _, detail = name.partition(" (")
    slug = base.replace("+", "plus-") + ("-" + detail.split()[0].rstrip(")").lower() if detail else "")
    return Path(out) / f"{slug}-s{seed}"


def ablation(teacher, seeds, out, names=None, extra=()):
    """Distil `teacher` with each loss set of ABLATION (all, or `names`) and evaluate every student with
    evaluate.py on the held-out photos (photos+demo, light inputs); returns the markdown table (mean over
    the photos, then mean ± half the range over training seeds). Finished runs are not trained again."""
    import csv

    lines = ["| student losses | " + " | ".join(ABLATION_KEYS) + " |", "|---" * (len(ABLATION_KEYS) + 1) + "|"]
    for name in names or ABLATION:
        per_seed = {k: [] for k in ABLATION_KEYS}
        for seed in seeds:
            folder = ablation_folder(out, name, seed)
            report = folder / "report"
            if not (report / "metrics.csv").exists():
                if not (folder / "student.pt").exists():
                    subprocess.run([sys.executable, "train.py", *ABLATION_BASE, "--teacher", str(teacher), "--out",
                                    str(folder), "--overwrite", "--seed", str(seed), *ABLATION[name], *extra],
                                   check=True)
                subprocess.run([sys.executable, "evaluate.py", "--ckpt", str(folder / "student.pt"), "--data",
                                "photos+demo", "--degradation", "light", "--out", str(report)], check=True)
            rows = list(csv.DictReader(open(report / "metrics.csv")))
            for k in ABLATION_KEYS:
                per_seed[k].append(mean([float(r[k]) for r in rows if r["method"] == "student"]))
        lines.append(f"| {name} | " + " | ".join(cell(per_seed[k], 3 if k not in ("psnr", "lf_psnr", "niqe") else 2)
                                                  for k in ABLATION_KEYS) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------
# Does training generalise? (docs/RESULTS.md): the tiny teacher at the tiny preset's budget, trained on the
# photo corpus or on the eight demo photos, for each degradation preset, measured on photos neither trained on.
# ---------------------------------------------------------------------------------------------------

GENERALISE_PRESETS = ("bicubic", "light", "resshift")
GENERALISE_DATA = ("photos", "demo")


def generalise(out, presets=GENERALISE_PRESETS, data=GENERALISE_DATA, extra=()):
    """Train (train.py --stage teacher, the tiny preset's defaults) and evaluate (evaluate.py --data
    photos+demo) one teacher per (preset, training data); a finished run is not trained or measured again.
    Returns the markdown table: PSNR and lf_psnr of bicubic, the teacher's one call and its sampler, on the
    held-out corpus photos and on chelsea + rocket, as the mean over each set's images."""
    import csv

    from data import PHOTOS_EVAL

    lines = ["| degradation | trained on | held out | bicubic PSNR / lf | one call PSNR / lf (gain) "
             "| sampler PSNR / lf (gain) |", "|---|---|---|---|---|---|"]
    for preset in presets:
        for d in data:
            folder = Path(out) / f"{preset}-{d}"
            report = folder / "eval" / "metrics.csv"
            if not report.exists():
                for cmd in ([sys.executable, "train.py", "--preset", "tiny", "--stage", "teacher", "--data", d,
                             "--degradation", preset, "--out", str(folder), "--overwrite", *extra],
                            [sys.executable, "evaluate.py", "--teacher", str(folder / "teacher.pt"),
                             "--data", "photos+demo", "--degradation", preset, "--out", str(folder / "eval")]):
                    folder.mkdir(parents=True, exist_ok=True)
                    with open(folder / "study.log", "a") as log:
                        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT,
                                       env={**os.environ, "TQDM_DISABLE": "1"})
            rows = list(csv.DictReader(open(report)))
            for held_out, keep in (("corpus (8)", lambda s: s in PHOTOS_EVAL),
                                   ("chelsea + rocket", lambda s: s not in PHOTOS_EVAL)):
                def avg(method, key):
                    vals = [float(r[key]) for r in rows if r["method"] == method and keep(r["image"])]
                    return sum(vals) / len(vals)

                cells = [f"{avg('bicubic', 'psnr'):.2f} / {avg('bicubic', 'lf_psnr'):.2f}"]
                for method in ("teacher_1step", "teacher"):
                    cells.append(f"{avg(method, 'psnr'):.2f} / {avg(method, 'lf_psnr'):.2f} "
                                 f"({avg(method, 'psnr') - avg('bicubic', 'psnr'):+.2f} / "
                                 f"{avg(method, 'lf_psnr') - avg('bicubic', 'lf_psnr'):+.2f})")
                lines.append(f"| {preset} | {d} | {held_out} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip(),
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--group", action="append", default=[], choices=list(GROUPS), help="candidates to run")
    ap.add_argument("--candidate", action="append", default=[], choices=list(CANDIDATES), help="one candidate")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="training seeds")
    ap.add_argument("--iters", type=int, nargs="+", default=[1200], help="teacher training steps")
    ap.add_argument("--draws", type=int, default=3, help="LR draws per held-out photo")
    ap.add_argument("--jobs", type=int, default=2, help="runs in parallel (each on 2/jobs threads)")
    ap.add_argument("--out", default="runs/study", help="where the runs go")
    ap.add_argument("--table", action="store_true", help="only print the table of the runs in --out")
    ap.add_argument("--sigma-data", action="store_true", help="measure σ_d on the training photos and exit")
    ap.add_argument("--ablation", metavar="TEACHER", help="run the student-loss ablation from this teacher.pt")
    ap.add_argument("--loss-set", action="append", default=[], choices=list(ABLATION), help="with --ablation: "
                    "only these loss sets (default: all)")
    ap.add_argument("--generalise", action="store_true", help="the table of docs/RESULTS.md's \"Does training "
                    "generalise?\": tiny teachers trained on the corpus or the demo photos, per degradation")
    ap.add_argument("--measure", help=argparse.SUPPRESS)  # (internal: measure one run folder, in its own process)
    args = ap.parse_args(argv)
    if args.sigma_data:
        return sigma_data()
    if args.ablation:
        text = ablation(args.ablation, args.seeds, "runs/ablation", args.loss_set or None)
        Path("results/study").mkdir(parents=True, exist_ok=True)
        Path("results/study/ablation.md").write_text(text + "\n")
        print(text)
        return 0
    if args.generalise:
        text = generalise("runs/generalise")
        Path("results/study").mkdir(parents=True, exist_ok=True)
        Path("results/study/generalise.md").write_text(text + "\n")
        print(text)
        return 0
    if args.measure:
        res = measure(Path(args.measure) / "teacher.pt", eval_pairs(args.draws))
        (Path(args.measure) / "study.json").write_text(json.dumps(res))
        return 0

    names = [n for g in args.group for n in GROUPS[g]] + args.candidate
    jobs = [(n, s, i) for i in args.iters for n in dict.fromkeys(names) for s in args.seeds]
    threads = max(1, (os.cpu_count() or 2) // args.jobs)
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(run_one, *j, args.out, args.draws, threads) for j in jobs]
    failed = [j for j, f in zip(jobs, futures) if f.exception() is not None]
    for j in failed:
        print(f"failed: {j}: {futures[jobs.index(j)].exception()}", file=sys.stderr)
    results = [json.loads(p.read_text()) for p in sorted(Path(args.out).glob("*/study.json"))]
    text = table(results) + "\n\nDenoising curves, PSNR of decode(x̂₀), fresh/det/anc:\n" + curves_table(results)
    Path("results/study").mkdir(parents=True, exist_ok=True)
    Path("results/study/table.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
