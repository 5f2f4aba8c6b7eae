"""
tools/export.py: a trained teacher and its student, ready to ship: 16-bit copies with their SHA-256
manifest (what weights/ holds; checkpoint.load_checkpoint checks the manifest when it loads them).

    python tools/export.py --teacher runs/ship/teacher.pt --student runs/ship-student/student.pt --to weights
"""

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from checkpoint import MANIFEST, load_checkpoint, save_checkpoint  # noqa: E402
from runtime import sha256_file  # noqa: E402


def write_manifest(folder, names):
    """Write folder/SHA256SUMS for the files `names` in it, in sha256sum's format (check by hand with
    `sha256sum -c SHA256SUMS`)."""
    folder = Path(folder)
    lines = [f"{sha256_file(folder / n)}  {n}" for n in sorted(names)]
    (folder / MANIFEST).write_text("\n".join(lines) + "\n")
    return folder / MANIFEST


def export_pair(teacher, student, folder, dtype=torch.float16):
    """A trained teacher and its student as 16-bit files teacher.pt and student.pt in `folder`, with the
    SHA256SUMS manifest that loading checks. Each keeps its config, degradation and training step."""
    folder = Path(folder)
    models = {kind: load_checkpoint(src, kind=kind) for kind, src in (("teacher", teacher), ("student", student))}
    if models["teacher"].cfg != models["student"].cfg:
        raise ValueError(f"{student} was not distilled from a teacher like {teacher}: their configs differ")
    for kind, m in models.items():
        save_checkpoint(folder / f"{kind}.pt", m, m.info["degradation"], m.info["step"], dtype=dtype)
    return [folder / "teacher.pt", folder / "student.pt", write_manifest(folder, ["teacher.pt", "student.pt"])]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip())
    ap.add_argument("--teacher", required=True, help="the teacher checkpoint (a train.py run's teacher.pt)")
    ap.add_argument("--student", required=True, help="the student distilled from it (student.pt)")
    ap.add_argument("--to", metavar="DIR", default="weights", help="where to write them (default: %(default)s)")
    args = ap.parse_args(argv)
    try:
        paths = export_pair(args.teacher, args.student, args.to)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    for p in paths:
        print(f"{p} ({p.stat().st_size / 2**20:.2f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
