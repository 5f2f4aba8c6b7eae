"""Tests of study.py, the recipe study: its measurements and its table. CPU, seconds.

    python -m pytest tests/test_study.py
"""

import pytest
import torch

import checkpoint as C
import model as M
import study


def test_cell_is_mean_and_half_range_over_seeds():
    assert study.cell([1.0, 2.0]) == "1.50 ± 0.50"
    assert study.cell([0.1234], 3) == "0.123"


def test_recorder_keeps_every_estimate_of_a_sampler_path():
    torch.manual_seed(0)
    m = M.SRModel(M.ModelConfig(preset="tiny", T=4, param="precond")).eval()
    lr = torch.rand(1, 3, 8, 8)
    y0 = m.encode_lr(lr)
    eps = torch.randn(y0.shape)
    rec = study.Recorder(m)
    out = M.sample_deterministic(rec, rec.prior_sample(y0, eps), y0, lr)
    assert sorted(rec.x0_hats) == [1, 2, 3, 4]
    torch.testing.assert_close(out, rec.x0_hats[1])  # the last step returns x̂₀ at t = 1


def test_measure_and_table_on_a_tiny_teacher(tmp_path):
    """One LR draw per held-out photo, a T = 2 teacher: every method and curve is measured, and the table
    has its row, with bicubic's numbers independent of the teacher."""
    torch.manual_seed(0)
    C.save_checkpoint(tmp_path / "teacher.pt", M.SRModel(M.ModelConfig(preset="tiny", T=2, param="precond")))
    res = study.measure(tmp_path / "teacher.pt", study.eval_pairs(1))
    assert res["T"] == 2 and [r["photo"] for r in res["rows"]] == ["chelsea", "rocket"]
    row = res["rows"][0]
    assert set(row) >= {"bicubic", "1call", "det", "anc", "curves"}
    assert set(row["det"]) == {"psnr", "lf_psnr", "hf_ratio", "hf_corr"}
    assert sorted(row["curves"]["fresh"]) == sorted(row["curves"]["det"]) == [1, 2]
    # an untrained precond model returns y₀ + c_skip·(x_T − y₀): at t = T nearly bicubic
    assert row["1call"]["lf_psnr"] == pytest.approx(row["bicubic"]["lf_psnr"], abs=0.5)
    results = [{"name": "x0-T15", "seed": s, "iters": 10, "train_seconds": 1.0, **res} for s in (0, 1)]
    text = study.table(results)
    assert "| x0-T15 | 10 | 2 | 1 |" in text and "bicubic: PSNR" in text
