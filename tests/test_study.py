"""Tests of tools/study.py: its studies run end to end on tiny settings (train.py, evaluate.py). CPU, ~20 s.

    python -m pytest tests/test_study.py
"""

import pytest
import torch

import checkpoint
import metrics
import model
from tools import study



def test_cell_is_mean_and_half_range_over_seeds():
    assert study.cell([1.0, 2.0]) == "1.50 ± 0.50" and study.cell([0.1234], 3) == "0.123"
    assert study.cell([1.0, None]) == "n/a"  # a metric a run could not measure


def test_sigma_data_measures_the_spread_and_says_sigma_d_is_set_below_it(capsys):
    assert study.main(["--sigma-data", "--degradation", "bicubic", "--patch-size", "32", "--batches", "1"]) == 0
    printed = capsys.readouterr().out
    assert "demo, 32² crops, bicubic: std of x₀ − y₀ = 0." in printed
    assert "set below these on purpose: it is a tuning value, not this std" in printed
    spread = study.sigma_data("demo", ["bicubic"], [32], batches=1)[32, "bicubic"]
    assert model.ModelConfig().sigma_data < spread < 0.5  # (the pixel latent itself has a spread of about 0.5)


@pytest.fixture(scope="module")
def tiny_teacher(tmp_path_factory):
    """A T = 2 teacher, random weights, trained (it says) on the light degradation."""
    path = tmp_path_factory.mktemp("teacher") / "teacher.pt"
    torch.manual_seed(0)
    checkpoint.save_checkpoint(path, model.SRModel(model.ModelConfig(size="tiny", T=2)), "light", 0)
    return path


def test_ablation_runs_end_to_end(tmp_path, tiny_teacher, monkeypatch, capsys):
    """One loss set, one seed, two student steps of train.py on the demo photos, evaluate.py on the held-out
    ones: the table has its row; a second run finds the report and trains nothing."""
    monkeypatch.chdir(tmp_path)  # (runs/ablation and results/study go here)
    monkeypatch.setattr(metrics, "weights_dir", lambda: tmp_path / "no-weights")  # LPIPS & co: n/a, faster
    calls = []
    real_train = study.train
    monkeypatch.setattr(study, "train", lambda args, log=None: calls.append(args) or real_train(args, log))
    argv = ["--ablation", str(tiny_teacher), "--seeds", "0", "--loss-set", "distillation", "--data", "demo",
            "--train-args", "--student-iters 2 --ckpt-every 2 --batch-size 2"]
    assert study.main(argv) == 0
    [args] = calls  # train.py's current flags, the tiny settings last
    assert args[args.index("--size") + 1] == "tiny" and args[args.index("--learning-rate") + 1] == "2e-4"
    assert args[-6:] == ["--student-iters", "2", "--ckpt-every", "2", "--batch-size", "2"]
    table = (tmp_path / "results" / "study" / "ablation.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| distillation |"))
    cells = row.strip("| \n").split(" | ")[1:]
    assert len(cells) == len(study.ABLATION_KEYS) and 5 < float(cells[0]) < 50 and cells[3] == "n/a"
    report = tmp_path / "runs" / "ablation" / "distillation-s0" / "report"
    assert "degradation light (--degradation;" in (report / "summary.md").read_text()
    assert study.main(argv) == 0 and len(calls) == 1 and row in capsys.readouterr().out  # nothing trained again


def test_generalise_trains_and_measures_one_teacher_per_degradation_and_data(tmp_path, monkeypatch):
    monkeypatch.setattr(metrics, "weights_dir", lambda: tmp_path / "no-weights")
    table = study.generalise(tmp_path, ["bicubic"], ["demo"], held_out="demo",
                             extra=["--teacher-iters", "2", "--ckpt-every", "2", "--batch-size", "2",
                                    "--diffusion-steps", "2"])
    assert (tmp_path / "bicubic-demo" / "teacher.pt").exists() and (tmp_path / "bicubic-demo" / "study.log").exists()
    [row] = [line for line in table.splitlines() if line.startswith("| bicubic | demo |")]
    assert row.startswith("| bicubic | demo | chelsea + rocket | ") and row.count("(") == 2  # the two gains


def test_one_study_at_a_time(capsys):
    with pytest.raises(SystemExit):
        study.main([])
    assert "one of the arguments --sigma-data --ablation --generalise is required" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        study.main(["--sigma-data", "--generalise"])
    assert "not allowed with argument" in capsys.readouterr().err
