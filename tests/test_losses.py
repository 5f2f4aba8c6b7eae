"""Tests of losses.py: each loss against its defining properties. CPU, a few seconds.

    python -m pytest tests/test_losses.py
"""

import json
import math

import pytest
import torch
import torch.nn.functional as F

import losses
import model as M
from conftest import RESSHIFT_SCHEDULE, photo, untrained


def photos(size=64):
    return torch.cat([photo(n, size) for n in ("astronaut", "coffee", "chelsea")])


@pytest.fixture(scope="module")
def clip():
    torch.manual_seed(0)
    return losses.load_clip("random")


# ------------------------------------------------------------------ ESS


def test_ess_is_zero_for_identical_images_and_within_0_2(clip):
    hr = photos()
    assert losses.ess(clip, hr, hr).item() == pytest.approx(0, abs=1e-6)
    for sr in (hr.flip(0), torch.rand_like(hr), 1 - hr, torch.zeros_like(hr)):
        assert 0 <= losses.ess(clip, sr, hr).item() <= 2
    assert losses.ess(clip, hr.flip(0), hr) > 0


def test_ess_sends_gradient_to_the_image_and_none_to_clip(clip):
    hr = photos()
    sr = (hr * 0.8 + 0.1).requires_grad_(True)
    losses.ess(clip, sr, hr).backward()
    assert sr.grad is not None and sr.grad.abs().sum() > 0
    assert all(not p.requires_grad and p.grad is None for p in clip.parameters())
    clip.train()
    assert not clip.training  # frozen: stays in eval mode


def test_clip_preprocessing_uses_the_encoders_size_and_statistics(clip):
    seen = {}
    clip.visual.register_forward_hook(lambda m, i, o: seen.setdefault("x", i[0]))
    clip(photos(96))
    assert seen["x"].shape[-2:] == clip.image_size == (64, 64)
    expect = (F.interpolate(photos(96), size=(64, 64), mode="bicubic", antialias=True) - clip.mean) / clip.std
    torch.testing.assert_close(seen["x"], expect)
    assert clip.mean.flatten().tolist() == pytest.approx([0.48145466, 0.4578275, 0.40821073])


def test_clip_weight_tags_bring_their_activation_and_normalization(tmp_path, monkeypatch):
    """A tag's own settings apply even when its weights come from the local cache (a file path): OpenAI's
    ViT-B-32 weights, say, need QuickGELU and their own mean/std."""
    import open_clip

    cfg = {"embed_dim": 32, "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16,
                                           "head_width": 16},
           "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 32, "heads": 2, "layers": 1}}
    (tmp_path / "vpdsr-test-tagged.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(tmp_path / "vpdsr-test-tagged.json")
    torch.save(open_clip.create_model("vpdsr-test-tagged").state_dict(), tmp_path / "w.pt")
    tag = {"quick_gelu": True, "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25), "hf_hub": "org/repo/"}
    real = open_clip.get_pretrained_cfg
    monkeypatch.setattr(open_clip, "get_pretrained_cfg", lambda n, t: tag if t == "mytag" else real(n, t))
    monkeypatch.setattr(losses, "cached_clip_weights", lambda name, t: str(tmp_path / "w.pt"))
    for spec in ["vpdsr-test-tagged:mytag", f"vpdsr-test-tagged:mytag:{tmp_path / 'w.pt'}"]:  # cache, or a file
        enc = losses.load_clip(spec)
        assert enc.semantic
        assert type(enc.visual.transformer.resblocks[0].mlp.gelu).__name__ == "QuickGELU"
        assert enc.mean.flatten().tolist() == [0.5] * 3 and enc.std.flatten().tolist() == [0.25] * 3


def test_a_weights_file_needs_its_tag(tmp_path):
    """ViT-B-32's OpenAI weights need QuickGELU, its LAION-2B weights GELU: a file alone cannot say which, and
    loading it with the wrong one would give a silently different encoder."""
    (tmp_path / "w.pt").write_bytes(b"not read")
    with pytest.raises(ValueError, match="say NAME:TAG"):
        losses.load_clip(f"ViT-B-32:{tmp_path / 'w.pt'}")
    with pytest.raises(FileNotFoundError, match="no file"):
        losses.load_clip(f"ViT-B-32:openai:{tmp_path / 'missing.pt'}")


def test_clip_weights_missing_from_the_cache_fail_fast_with_advice(monkeypatch):
    monkeypatch.setattr(losses, "cached_clip_weights", lambda name, tag: None)
    with pytest.raises(RuntimeError) as err:
        losses.load_clip("ViT-B-32:openai")
    msg = str(err.value)
    assert "python tools/fetch.py clip ViT-B-32:openai" in msg and "--clip vgg16" in msg
    with pytest.raises(ValueError, match="no model 'NoSuchNet'"):
        losses.load_clip("NoSuchNet:openai")
    with pytest.raises(ValueError, match="say NAME:TAG.*ViT-B-32"):
        losses.load_clip("ViT-B-32:nonsense")


# ------------------------------------------------------------------ the teacher's objective


def test_timesteps_weighted_towards_T():
    g = torch.Generator().manual_seed(0)
    weighted = losses.draw_timesteps(4, 40_000, 0.7, g, "cpu")
    assert (weighted == 4).float().mean().item() == pytest.approx(0.7, abs=0.01)
    assert set(weighted[weighted < 4].tolist()) == {1, 2, 3}
    assert set(losses.draw_timesteps(4, 100, 1.0, g, "cpu").tolist()) == {4}


def test_teacher_loss_is_the_x0_regression_at_the_drawn_t_and_noise():
    torch.manual_seed(0)
    teacher = M.SRModel(M.ModelConfig(size="tiny")).eval()
    hr, lr = photos(64), photos(16)
    x0, y0 = teacher.encode(hr), teacher.encode_lr(lr)
    loss = losses.teacher_loss(teacher, x0, y0, lr, 0.5, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)  # the same draws, in the same order: t, then ε
    t = losses.draw_timesteps(4, 3, 0.5, g, "cpu")
    x_t = teacher.q_sample(x0, y0, t, torch.randn(x0.shape, generator=g))
    assert loss.item() == pytest.approx(((teacher(x_t, lr, t, y0) - x0) ** 2).mean().item(), rel=1e-6)


# ------------------------------------------------------------------ HFP


def test_hfp_is_zero_for_identical_images():
    hr = photos()
    assert losses.hfp(hr, hr).item() == 0


def sinusoid(cycles, size=64):
    x = torch.arange(size, dtype=torch.float32)
    return 0.05 * torch.sin(2 * math.pi * cycles * x / size).view(1, 1, 1, -1).expand(1, 3, size, size)


def test_hfp_ignores_changes_below_the_cutoff_and_sees_those_above():
    hr = photos()
    sr = hr.flip(-1)
    base = losses.hfp(sr, hr, cutoff=0.25).item()
    low = sinusoid(2)  # ρ = (2/64)/0.5 = 0.0625 < 0.25: only masked-out frequencies change
    assert losses.hfp(sr + low, hr, cutoff=0.25).item() == pytest.approx(base, rel=1e-5)
    high = sinusoid(20)  # ρ = 0.625 > 0.25
    assert losses.hfp(sr + high, hr, cutoff=0.25).item() != pytest.approx(base, rel=1e-3)
    assert losses.hfp(sr + low, hr, cutoff=0.0).item() != pytest.approx(losses.hfp(sr, hr, cutoff=0.0).item(), rel=1e-4)


def test_hfp_grows_as_the_image_is_blurred():
    from torchvision.transforms.functional import gaussian_blur

    hr = photos()
    values = [losses.hfp(gaussian_blur(hr, 9, s), hr).item() for s in (0.5, 1.0, 2.0)]
    assert 0 < values[0] < values[1] < values[2]


def test_high_pass_mask():
    m = losses.high_pass_mask(8, 8, 0.5)
    assert m[0, 0] == 0 and m[4, 4] == 1 and m[0, 4] == 1 and m[0, 1] == 0  # DC, corner, Nyquist, low
    assert losses.high_pass_mask(8, 8, 0.0).sum() == 64


# ------------------------------------------------------------------ hinge and distillation


def test_hinge_losses_on_known_logits():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    assert losses.d_hinge(real, fake).item() == pytest.approx((0 + 0.5) / 2 + (0 + 1) / 2)
    assert losses.g_hinge(torch.tensor([1.0, 3.0])).item() == pytest.approx(-2.0)
    assert losses.d_hinge(torch.full((4,), 1.5), torch.full((4,), -1.5)).item() == 0  # beyond the margins


def test_distillation_target_is_the_teachers_deterministic_sampler():
    torch.manual_seed(0)
    teacher = untrained(M.SRModel(M.ModelConfig(size="tiny", **RESSHIFT_SCHEDULE))).eval()
    lr = photos(16)
    y0, eps = teacher.encode_lr(lr), torch.randn(3, 48, 16, 16)
    target = losses.distillation_target(teacher, teacher.prior_sample(y0, eps), y0, lr)
    assert not target.requires_grad
    # The same sampler written independently, in its DDIM form: each step re-noises x̂₀ to the next level
    # with the noise ε̂ that x_t implies, x_s = x̂₀ + η_s·(y₀ − x̂₀) + κ√η_s·ε̂.
    eta, kappa = teacher.eta.double(), teacher.cfg.kappa
    with torch.no_grad():
        x = y0 + kappa * eta[-1].sqrt() * eps
        for t in range(teacher.cfg.T, 0, -1):
            x0_hat = teacher(x.float(), lr, t, y0).double()
            eps_hat = (x - x0_hat - eta[t] * (y0 - x0_hat)) / (kappa * eta[t].sqrt())
            x = x0_hat + eta[t - 1] * (y0 - x0_hat) + kappa * eta[t - 1].sqrt() * eps_hat
    torch.testing.assert_close(target.double(), x, rtol=0, atol=1e-4)
    x = torch.randn_like(target)
    assert losses.distillation(x, target).item() == pytest.approx(((x - target) ** 2).mean().item(), rel=1e-6)
    assert losses.distillation(target, target).item() == 0

    class Perfect(M.SRModel):  # a teacher that always knows x₀: its T-step result must be exactly x₀
        def forward(self, x_t, lr, t, y0=None):
            return self.x0.expand_as(x_t)

    perfect = Perfect(M.ModelConfig(size="tiny", **RESSHIFT_SCHEDULE))
    perfect.x0 = torch.rand(1, 48, 16, 16) * 2 - 1
    target = losses.distillation_target(perfect, perfect.prior_sample(y0, eps), y0, lr)
    torch.testing.assert_close(target, perfect.x0.expand(3, -1, -1, -1), atol=1e-5, rtol=0)
