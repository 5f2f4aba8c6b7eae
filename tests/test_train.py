"""Tests of train.py: smoke runs of both stages on the demo photos, resume, failures, compile,
the benchmark, the settings. CPU; tiny networks, 32² patches, a handful of steps.

    python -m pytest tests/test_train.py            # ~1 min
    python -m pytest tests/test_train.py -m "not slow"
"""

import json
import math
from pathlib import Path

import pytest
import torch

import checkpoint as C
import config
import losses
import model as M
import sample as S
import train
from tools import bench, plot_losses, preview

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--data", "demo", "--size", "tiny", "--batch-size", "2", "--patch-size", "32", "--log-every", "1",
        "--ckpt-every", "2", "--warmup", "2"]


def run_train(out, *extra):
    return train.main([*TINY, "--out", str(out), *map(str, extra)])


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """Both stages, 4 + 4 steps, the discriminator joining at student step 2."""
    out = tmp_path_factory.mktemp("smoke")
    assert run_train(out, "--teacher-iters", 4, "--student-iters", 4, "--adv-start", 2) == 0
    return out


def test_smoke_run_writes_every_file(smoke):
    for name in ["teacher.pt", "student.pt", "last.pt", "config.json", "log.jsonl"]:
        assert (smoke / name).is_file(), name
    log = [json.loads(line) for line in open(smoke / "log.jsonl")]
    teacher = [r for r in log if r["stage"] == "teacher"]
    student = [r for r in log if r["stage"] == "student"]
    assert [r["step"] for r in teacher] == [1, 2, 3, 4] and [r["step"] for r in student] == [1, 2, 3, 4]
    assert {"loss", "learning_rate", "img_per_s"} <= set(teacher[0])
    assert {"dist", "ess", "hfp", "total"} <= set(student[0]) and "adv" not in student[0]
    assert {"adv", "d"} <= set(student[-1])  # the discriminator joined at --adv-start
    # linear warm-up over 2 steps: the first step runs at half the rate
    assert teacher[0]["learning_rate"] == pytest.approx(config.DEFAULTS["tiny"]["learning_rate"] / 2)
    written = json.loads((smoke / "config.json").read_text())
    assert written["args"]["batch_size"] == 2 and written["degradation"]["pipeline"] == "second-order"
    assert plot_losses.plot_losses(smoke) == [smoke / "loss_teacher.png", smoke / "loss_student.png"]
    grid = preview.preview(smoke, n=2)
    assert grid == smoke / "samples" / "preview_t4_s4.png"
    from PIL import Image

    with Image.open(grid) as im:  # 2 rows of LR | teacher | student | HR, 32² crops, 2-pixel padding
        assert im.size == (4 * 34 + 2, 2 * 34 + 2)


def test_checkpoints_load_back_and_upscale(smoke, tmp_path):
    teacher = C.load_checkpoint(smoke / "teacher.pt", kind="teacher")
    student = C.load_checkpoint(smoke / "student.pt", kind="student")
    assert teacher.cfg == student.cfg and teacher.cfg.size == "tiny"
    assert student.info["step"] == 4 and student.info["degradation"] == "resshift"
    assert not all(torch.equal(a, b) for a, b in zip(teacher.net.parameters(), student.net.parameters()))
    rgb = torch.rand(3, 20, 28)
    assert S.upscale_image(student, rgb).shape == (3, 80, 112)


def test_distillation_target_in_the_loop_is_the_teachers_sampler(smoke, monkeypatch):
    """Spy on one student step: the target it regresses to is sample_deterministic of the frozen teacher
    from the very x_T the student starts from."""
    args, _ = config.parse_args([*TINY, "--out", str(smoke)])
    run = train.Run(args)
    teacher = C.load_checkpoint(smoke / "teacher.pt", kind="teacher")
    s = train.setup_student(run, teacher, None, train.load_ess_encoder(run))
    seen = {}
    original = losses.distillation
    def spy(x0_hat, target):
        seen["target"] = target
        return original(x0_hat, target)

    monkeypatch.setattr(losses, "distillation", spy)
    hr = torch.rand(2, 3, 32, 32)
    train.student_step(run, s, hr, step=0)
    g, dg = run.generators(1, 0)
    from degrade import degrade

    _, lr = degrade(hr, run.deg, g)
    y0 = teacher.encode_lr(lr)
    eps = torch.randn(y0.shape, generator=dg)
    x_T = teacher.prior_sample(y0, eps)
    torch.testing.assert_close(seen["target"], M.sample_deterministic(teacher, x_T, y0, lr))


def assert_trained_pair(out, student_steps):
    """teacher.pt and student.pt as sample.py needs them: the right kinds and step, plain (unwrapped) keys
    that load into the network, finite weights, and a student that moved away from its teacher."""
    teacher = C.load_checkpoint(out / "teacher.pt", kind="teacher")
    student = C.load_checkpoint(out / "student.pt", kind="student")
    saved = C.read_checkpoint(out / "student.pt")
    assert saved["step"] == student_steps
    assert not any(k.startswith(("module.", "_orig_mod.")) for k in saved["weights"])
    assert all(torch.isfinite(p).all() for p in student.net.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(teacher.net.parameters(), student.net.parameters()))


def final_weights(path):
    return C.read_checkpoint(path)["weights"]


def assert_same_weights(a, b):
    wa, wb = final_weights(a), final_weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], atol=1e-5, rtol=0, msg=k)


def test_resume_ends_where_an_uninterrupted_run_ends(tmp_path):
    """CPU, fp32: stopped in the teacher stage, and again in the student stage, then resumed, the run ends
    with the same weights as one that never stopped."""
    steps = ["--adv-start", 1, "--ckpt-every", 1]
    assert run_train(tmp_path / "straight", "--teacher-iters", 4, "--student-iters", 3, *steps) == 0
    part = tmp_path / "parts"
    assert run_train(part, "--teacher-iters", 2, "--stage", "teacher", *steps) == 0
    assert run_train(part, "--teacher-iters", 4, "--student-iters", 2, "--resume", *steps) == 0
    assert_same_weights(tmp_path / "straight" / "teacher.pt", part / "teacher.pt")
    assert run_train(part, "--teacher-iters", 4, "--student-iters", 3, "--resume", *steps) == 0
    assert_same_weights(tmp_path / "straight" / "student.pt", part / "student.pt")
    state = torch.load(part / "last.pt", weights_only=True)
    assert state["stage"] == "student" and state["step"] == 3 and "opt" in state["trained_d"]


def test_resume_keeps_the_runs_own_settings(tmp_path, capsys):
    """A resumed run takes its settings from last.pt: only step counts and such may change."""
    assert run_train(tmp_path, "--teacher-iters", 2, "--stage", "teacher") == 0
    assert train.main(["--out", str(tmp_path), "--resume", "--stage", "teacher", "--teacher-iters", "3"]) == 0
    assert "with the run's own" in capsys.readouterr().out
    assert C.load_checkpoint(tmp_path / "teacher.pt").cfg.size == "tiny"
    assert C.read_checkpoint(tmp_path / "teacher.pt")["step"] == 3
    assert json.loads((tmp_path / "config.json").read_text())["args"]["workers"] == 0  # tiny's, not base's
    with pytest.raises(SystemExit, match="--batch-size cannot change when a run is resumed"):
        train.main(["--out", str(tmp_path), "--resume", "--batch-size", "4"])
    with pytest.raises(SystemExit, match="--learning-rate cannot change"):
        train.main(["--out", str(tmp_path), "--resume", "--learning-rate", "0.5"])
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    state["args"]["param"] = "x0"  # as an earlier version wrote it: a setting this train.py no longer has
    torch.save(state, tmp_path / "last.pt")
    with pytest.raises(SystemExit, match="written with --param, which this version of train.py does not have"):
        train.main(["--out", str(tmp_path), "--resume"])


def test_the_models_defaults_are_what_training_uses():
    """One set of defaults: what model.py's ModelConfig says is what train.py trains without flags."""
    args, cfg = config.parse_args(["--size", "tiny"])[0], M.ModelConfig()
    assert (args.diffusion_steps, args.kappa, args.min_noise_level, args.sigma_data) \
        == (cfg.T, cfg.kappa, cfg.min_noise_level, cfg.sigma_data) == (4, 0.25, 0.04, 0.03)


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    original = losses.teacher_loss
    calls = []

    def poisoned(*args):
        calls.append(1)
        loss = original(*args)
        return loss * float("nan") if len(calls) > 2 else loss

    monkeypatch.setattr(losses, "teacher_loss", poisoned)
    with pytest.raises(SystemExit) as err:
        run_train(tmp_path, "--teacher-iters", 6, "--stage", "teacher")
    assert err.value.code == 1
    out = capsys.readouterr().out
    assert "NaN or infinite in the teacher stage by step 3" in out and "last.pt (step 2)" in out
    assert torch.load(tmp_path / "last.pt", weights_only=True)["step"] == 2
    assert all(torch.isfinite(w).all() for w in final_weights(tmp_path / "teacher.pt").values())


def test_refuses_bad_inputs(tmp_path, smoke, monkeypatch):
    with pytest.raises(SystemExit, match="already holds a run"):
        run_train(smoke, "--teacher-iters", 1)
    with pytest.raises(SystemExit, match="nothing to resume"):
        run_train(tmp_path / "empty", "--resume")
    with pytest.raises(SystemExit, match="student.pt holds a student, but a teacher"):
        run_train(tmp_path / "s1", "--stage", "student", "--teacher", smoke / "student.pt")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as err:
        run_train(tmp_path / "s3", "--data", "DIV2K")
    assert "DIV2K/DIV2K_train_HR" in str(err.value.code) and "python tools/fetch.py DIV2K" in str(err.value.code)


def test_student_stage_from_a_given_teacher(tmp_path, smoke):
    assert run_train(tmp_path, "--stage", "student", "--teacher", smoke / "teacher.pt", "--student-iters", 2) == 0
    assert C.load_checkpoint(tmp_path / "student.pt", kind="student").cfg.size == "tiny"
    assert not (tmp_path / "teacher.pt").exists()


def test_benchmark_runs_on_cpu(capsys):
    assert bench.main(["--size", "tiny", "--batch-size", "2", "--patch-size", "32", "--clip", "random"]) == 0
    out = capsys.readouterr().out
    for part in ["teacher", "student", "degradation", "teacher targets (4 steps", "ESS fwd/bwd (random", "HFP",
                 "discriminator", "step, end to end", "img/s", "peak memory", "light", "resshift", "bicubic",
                 "HR crops of scikit-image demo photos"]:
        assert part in out, part


@pytest.mark.slow
def test_compile_path_on_cpu(tmp_path):
    """Both stages compiled: the trained networks, the no-grad teacher and the discriminator."""
    assert run_train(tmp_path, "--compile", "--teacher-iters", 2, "--student-iters", 2, "--adv-start", 1) == 0
    assert_trained_pair(tmp_path, student_steps=2)
    log = [json.loads(line) for line in open(tmp_path / "log.jsonl")]
    assert "d" in log[-1] and all(math.isfinite(v) for r in log for v in r.values() if isinstance(v, float))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_both_stages_on_cuda_in_bf16_compiled(tmp_path):
    assert run_train(tmp_path, "--device", "cuda", "--teacher-iters", 2, "--student-iters", 2, "--compile") == 0
    assert json.loads((tmp_path / "config.json").read_text())["dtype"] in ("torch.bfloat16", "torch.float16")
    assert_trained_pair(tmp_path, student_steps=2)


def test_diffusion_flags_reach_the_checkpoint(tmp_path):
    assert run_train(tmp_path, "--teacher-iters", 2, "--stage", "teacher", "--diffusion-steps", 5, "--kappa", 0.5,
                     "--min-noise-level", 0.1, "--sigma-data", 0.25) == 0
    cfg = C.load_checkpoint(tmp_path / "teacher.pt").cfg
    assert (cfg.T, cfg.kappa, cfg.min_noise_level, cfg.sigma_data) == (5, 0.5, 0.1, 0.25)
    assert C.read_checkpoint(tmp_path / "teacher.pt")["format"] == C.FORMAT


def test_learning_rate_schedule():
    """Linear warm-up over 4 steps (the first step already moves), then a cosine that falls to 0 at step 20."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = train.warmup_schedule(opt, 4, total=20)
    lrs = []
    for _ in range(20):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    # 1/2·(1 + cos(π·(s − 4)/16)) after the warm-up
    assert lrs[4:] == pytest.approx([0.5 * (1 + math.cos(math.pi * (s - 4) / 16)) for s in range(4, 20)])


def test_print_config_says_where_every_value_comes_from(tmp_path, capsys):
    assert train.main(["--size", "tiny", "--diffusion-steps", "15", "--warmup", "7", "--print-config"]) == 0
    rows = {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows["--warmup"] == ["7", "command", "line"]
    assert rows["--learning-rate"] == ["0.001", "size", "tiny"]
    assert rows["--diffusion-steps"] == ["15", "command", "line"] and rows["--kappa"] == ["0.25", "default"]
    assert rows["--ema-decay"] == ["0.999", "default"]
    assert not (tmp_path / "runs").exists()  # nothing trained, nothing written
