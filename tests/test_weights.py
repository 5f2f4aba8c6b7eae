"""Tests of the shipped pair in weights/: the files, their manifest, and the model card's numbers.

    python -m pytest tests/test_weights.py
"""

import csv
from pathlib import Path

import pytest
import torch

import checkpoint as C
import evaluate
import model as M
from tools import export

WEIGHTS = Path(__file__).resolve().parent.parent / "weights"


def test_the_shipped_pair_is_small_16_bit_and_listed_in_its_manifest():
    names = {"teacher.pt", "student.pt"}
    assert names | {"SHA256SUMS", "README.md"} <= {p.name for p in WEIGHTS.iterdir()}
    assert sum((WEIGHTS / n).stat().st_size for n in names) <= 25 * 2**20
    for name in names:
        assert C.verify(WEIGHTS / name)  # listed, and its digest matches
        obj = C.read_checkpoint(WEIGHTS / name, kind=name.removesuffix(".pt"))
        assert {v.dtype for v in obj["weights"].values() if v.is_floating_point()} == {torch.float16}
    teacher, student = C.load_checkpoint(C.shipped("teacher")), C.load_checkpoint(C.shipped("student"))
    assert teacher.cfg == student.cfg and teacher.info["degradation"] == student.info["degradation"] == "light"


def test_export_writes_a_16_bit_pair_and_its_manifest(tmp_path, ckpts):
    paths = export.export_pair(ckpts / "teacher.pt", ckpts / "student.pt", tmp_path / "w")
    assert [p.name for p in paths] == ["teacher.pt", "student.pt", "SHA256SUMS"]
    for kind in ("teacher", "student"):
        full, half = C.load_checkpoint(ckpts / f"{kind}.pt"), C.load_checkpoint(tmp_path / "w" / f"{kind}.pt")
        assert C.verify(tmp_path / "w" / f"{kind}.pt") and half.kind == kind and half.cfg == full.cfg
        assert half.info["degradation"] == full.info["degradation"] and half.info["step"] == full.info["step"]
        for a, b in zip(full.net.parameters(), half.net.parameters()):
            torch.testing.assert_close(b, a.half().float())  # fp16 values, back in fp32
    other = tmp_path / "other.pt"  # a student of another schedule (T = 4, κ = 0.25) than the teacher's
    C.save_checkpoint(other, M.SRModel(M.ModelConfig(size="tiny"), kind="student"), "bicubic", 0)
    with pytest.raises(ValueError, match="configs differ"):
        export.export_pair(ckpts / "teacher.pt", other, tmp_path / "x")


def model_card_rows():
    """{(image, method): {metric: value}} from the model card's per-image table."""
    lines = (WEIGHTS / "README.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| image | method |"))
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = dict(zip(header, (c.strip() for c in line.strip("|").split("|"))))
        rows[cells["image"], cells["method"]] = {k: float(v) for k, v in cells.items() if k not in ("image", "method")}
    return rows


@pytest.mark.slow
def test_the_model_cards_numbers_reproduce(tmp_path):
    """The card's per-image numbers for the held-out demo photos, from the command the card gives: evaluate.py
    with no checkpoint and no --degradation (the shipped pair, on the `light` LR inputs it was trained for), seed
    0. PSNRs to 0.01 dB, the others to 0.001."""
    card = model_card_rows()
    assert {image for image, _ in card} == {"chelsea", "rocket"}
    assert evaluate.main(["--data", "demo", "--out", str(tmp_path)]) == 0
    measured = {(r["image"], r["method"]): r for r in csv.DictReader(open(tmp_path / "metrics.csv"))}
    for key, expected in card.items():
        for metric, value in expected.items():
            tolerance = 0.01 if "psnr" in metric else 0.001  # (dB; the card prints 4 decimals)
            assert float(measured[key][metric]) == pytest.approx(value, abs=tolerance), (key, metric)
