"""Tests of model.py: schedule, forward process, samplers, the latent, networks, checkpoints. CPU, seconds.

    python -m pytest tests/test_model.py
"""

import math

import pytest
import torch

import checkpoint as C
import model as M
from model import ModelConfig, SRModel
from runtime import sha256_file
from conftest import RESSHIFT_SCHEDULE, untrained
from conftest import photo as conftest_photo
from tools import export

# √η_t for t = 1..15 with ResShift's defaults (T=15, κ=2, p=0.3, √η_T=0.99, min noise level 0.04), as tabulated
# from its schedule formula to 4 decimals
LISTED = [0.02, 0.1172, 0.1763, 0.2336, 0.2916, 0.3510, 0.4124, 0.4759, 0.5417, 0.6099, 0.6807, 0.7540,
          0.8300, 0.9086, 0.99]


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return untrained(SRModel(ModelConfig(size="tiny", **RESSHIFT_SCHEDULE))).eval()


def photo(name="astronaut", size=64):
    return conftest_photo(name, size)


# ------------------------------------------------------------------ schedule and forward process


def test_eta_matches_the_listed_values():
    eta = M.eta_schedule(ModelConfig(**RESSHIFT_SCHEDULE))
    assert eta.shape == (16,) and eta[0] == 0
    assert eta[1:].sqrt().tolist() == pytest.approx(LISTED, abs=1e-4)


@pytest.mark.parametrize("T,kappa", [(15, 2.0), (4, 1.0), (50, 0.5)])
def test_eta_matches_an_independent_form_of_the_formula(T, kappa):
    # b^β_t = (√η_T/√η_1)^(((t−1)/(T−1))^p): the same schedule, written without b and β, with p = 0.3
    s1 = min(0.04 / kappa, 0.04)
    expected = [(s1 * (0.99 / s1) ** (((t - 1) / (T - 1)) ** 0.3)) ** 2 for t in range(1, T + 1)]
    cfg = ModelConfig(T=T, kappa=kappa)
    assert M.eta_schedule(cfg)[1:].tolist() == pytest.approx(expected, rel=1e-12)
    assert (M.eta_schedule(cfg).diff() > 0).all()


def test_forward_process_moments(tiny):
    """Over many ε, x_t has mean x₀ + η_t(y₀ − x₀) and variance κ²η_t."""
    x0, y0 = torch.rand(1, 4, 3, 3) * 2 - 1, torch.rand(1, 4, 3, 3) * 2 - 1
    n = 40000
    g = torch.Generator().manual_seed(0)
    for t in (1, 7, 15):
        eps = torch.randn((n, 4, 3, 3), generator=g)
        xt = tiny.q_sample(x0.expand(n, -1, -1, -1), y0.expand(n, -1, -1, -1), torch.full((n,), t), eps)
        eta = tiny.eta[t].item()
        torch.testing.assert_close(xt.mean(0), (x0 + eta * (y0 - x0))[0], atol=4 * 2 * math.sqrt(eta / n), rtol=0)
        torch.testing.assert_close(xt.var(0), torch.full((4, 3, 3), 4 * eta), rtol=0.05, atol=0)


def test_prior_sample_is_y0_plus_scaled_noise(tiny):
    y0, eps = torch.rand(2, 48, 4, 4), torch.randn(2, 48, 4, 4)
    torch.testing.assert_close(tiny.prior_sample(y0, eps), y0 + 2 * 0.99 * eps)


# ------------------------------------------------------------------ samplers


class Oracle(SRModel):
    """A 'network' that knows the answer: it returns the true x₀ whatever it is asked."""

    def forward(self, x_t, lr, t, y0=None):
        self.calls.append(int(torch.as_tensor(t).flatten()[0]))
        return self.x0.expand_as(x_t)


@pytest.mark.parametrize("sampler", [M.sample_deterministic, M.sample_ancestral])
@pytest.mark.parametrize("steps", [None, 4, 1])
def test_samplers_end_exactly_at_x0_with_a_perfect_network(sampler, steps):
    m = Oracle(ModelConfig(size="tiny", **RESSHIFT_SCHEDULE))
    m.x0, m.calls = torch.rand(1, 48, 8, 8) * 2 - 1, []
    y0, eps = torch.rand(1, 48, 8, 8) * 2 - 1, torch.randn(1, 48, 8, 8)
    kwargs = {"generator": torch.Generator().manual_seed(0)} if sampler is M.sample_ancestral else {}
    out = sampler(m, m.prior_sample(y0, eps), y0, torch.rand(1, 3, 8, 8), steps, **kwargs)
    torch.testing.assert_close(out, m.x0, atol=1e-5, rtol=0)
    assert m.calls == m.timesteps(steps) and m.calls[0] == 15 and len(m.calls) == (steps or 15)


class Linear(SRModel):
    """A 'network' whose answer depends on its input, so that the end of a trajectory depends on every step."""

    def forward(self, x_t, lr, t, y0=None):
        return 0.5 * x_t + 0.01 * int(t)


def test_samplers_follow_their_formulas_step_by_step():
    """Both samplers against their formulas (SinSR's deterministic step, ResShift's posterior), evaluated by
    hand in float64."""
    m = Linear(ModelConfig(size="tiny", **RESSHIFT_SCHEDULE))
    y0, eps = torch.full((1, 1, 1, 1), -0.5), torch.full((1, 1, 1, 1), 0.7)
    eta = M.eta_schedule(m.cfg).tolist()
    det = anc = -0.5 + 2 * math.sqrt(eta[15]) * 0.7  # x_T = y₀ + κ√η_T·ε
    g = torch.Generator().manual_seed(3)
    for t in range(15, 0, -1):
        s = t - 1
        x0 = 0.5 * det + 0.01 * t
        det = ((1 - eta[s] + math.sqrt(eta[s] * eta[t]) - math.sqrt(eta[s] / eta[t])) * x0
               + math.sqrt(eta[s] / eta[t]) * det + (eta[s] - math.sqrt(eta[s] * eta[t])) * -0.5)
        x0 = 0.5 * anc + 0.01 * t
        alpha = eta[t] - eta[s]
        anc = eta[s] / eta[t] * anc + alpha / eta[t] * x0
        if s > 0:
            anc += 2 * math.sqrt(eta[s] / eta[t] * alpha) * torch.randn((1, 1, 1, 1), generator=g).item()
    x_T = m.prior_sample(y0, eps)
    assert M.sample_deterministic(m, x_T, y0, None).item() == pytest.approx(det, abs=1e-5)
    out = M.sample_ancestral(m, x_T, y0, None, generator=torch.Generator().manual_seed(3))
    assert out.item() == pytest.approx(anc, abs=1e-5)
    assert det != pytest.approx(anc, abs=1e-3)


def test_samplers_with_fewer_steps_skip_timesteps_by_the_same_formulas():
    """With steps < T the update goes from t straight to the next visited s, with η_s in place of η_{t-1}."""
    m = Linear(ModelConfig(size="tiny", **RESSHIFT_SCHEDULE))
    y0, eps = torch.full((1, 1, 1, 1), 0.2), torch.full((1, 1, 1, 1), -0.4)
    eta = M.eta_schedule(m.cfg).tolist()
    ts = m.timesteps(4)
    det = anc = 0.2 + 2 * math.sqrt(eta[15]) * -0.4
    g = torch.Generator().manual_seed(5)
    for t, s in zip(ts, ts[1:] + [0]):
        x0 = 0.5 * det + 0.01 * t
        det = ((1 - eta[s] + math.sqrt(eta[s] * eta[t]) - math.sqrt(eta[s] / eta[t])) * x0
               + math.sqrt(eta[s] / eta[t]) * det + (eta[s] - math.sqrt(eta[s] * eta[t])) * 0.2)
        x0 = 0.5 * anc + 0.01 * t
        anc = eta[s] / eta[t] * anc + (eta[t] - eta[s]) / eta[t] * x0
        if s > 0:
            anc += 2 * math.sqrt(eta[s] / eta[t] * (eta[t] - eta[s])) * torch.randn((1, 1, 1, 1), generator=g).item()
    x_T = m.prior_sample(y0, eps)
    assert M.sample_deterministic(m, x_T, y0, None, steps=4).item() == pytest.approx(det, abs=1e-5)
    out = M.sample_ancestral(m, x_T, y0, None, steps=4, generator=torch.Generator().manual_seed(5))
    assert out.item() == pytest.approx(anc, abs=1e-5)


def test_samplers_are_reproducible_and_use_the_network(tiny):
    lr = photo(size=32)
    a = tiny.upscale(lr, steps=3, sampler="ancestral", generator=torch.Generator().manual_seed(1))
    b = tiny.upscale(lr, steps=3, sampler="ancestral", generator=torch.Generator().manual_seed(1))
    c = tiny.upscale(lr, steps=3, sampler="ancestral", generator=torch.Generator().manual_seed(2))
    assert a.shape == (1, 3, 128, 128) and torch.equal(a, b) and not torch.equal(a, c)
    d1 = tiny.upscale(lr, steps=3, generator=torch.Generator().manual_seed(1))
    d2 = tiny.upscale(lr, steps=3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(d1, d2) and not torch.equal(d1, a)


def test_timesteps():
    m = SRModel(ModelConfig(size="tiny", T=15))
    assert m.timesteps() == list(range(15, 0, -1))
    assert m.timesteps(1) == [15]
    assert m.timesteps(4) == [15, 10, 6, 1]
    with pytest.raises(ValueError, match="1..15"):
        m.timesteps(16)


def test_student_is_one_step_of_the_copied_teacher(tiny):
    student = M.make_student(tiny)
    assert student.kind == "student"
    for a, b in zip(student.net.parameters(), tiny.net.parameters()):
        assert torch.equal(a, b) and a.data_ptr() != b.data_ptr()  # a copy, not shared storage
    lr, eps = photo(size=16), torch.randn(1, 48, 16, 16)
    y0 = tiny.encode_lr(lr)
    expected = tiny.decode(tiny(tiny.prior_sample(y0, eps), lr, 15)).clamp(0, 1)
    torch.testing.assert_close(student.upscale(lr, eps), expected)
    torch.testing.assert_close(tiny.upscale(lr, eps, steps=1), expected)


# ------------------------------------------------------------------ the latent


def test_pixel_latent_round_trip_is_exact():
    img = photo(size=64)
    z = M.encode(img)
    assert z.shape == (1, 48, 16, 16) and z.min() >= -1 and z.max() <= 1
    back = M.decode(z)
    assert torch.equal((back * 255).round(), (img * 255).round())
    torch.testing.assert_close(back, img, atol=1e-6, rtol=0)


# ------------------------------------------------------------------ networks


def test_network_sizes():
    n = lambda size: sum(p.numel() for p in M.build_unet(size).parameters())  # noqa: E731
    assert n("tiny") <= 3e6
    assert 70e6 <= n("base") <= 80e6
    net = M.build_unet("base")
    assert net.config.block_out_channels == (128, 256, 256, 512) and net.config.layers_per_block == 2
    assert [b.__class__.__name__ for b in net.down_blocks] == ["DownBlock2D", "DownBlock2D", "AttnDownBlock2D",
                                                                "AttnDownBlock2D"]


def test_network_input_is_latent_plus_y0_plus_lr(tiny):
    assert tiny.net.config.in_channels == 48 + 48 + 3 and tiny.net.config.out_channels == 48
    x0_hat = tiny(torch.randn(2, 48, 16, 16), torch.rand(2, 3, 16, 16), torch.tensor([3, 15]))
    assert x0_hat.shape == (2, 48, 16, 16)


def test_conditioning_on_y0_feeds_the_bicubic_latent_to_the_network():
    torch.manual_seed(0)
    m = untrained(SRModel(ModelConfig(size="tiny")))
    lr, x_t, t = torch.rand(1, 3, 16, 16), torch.randn(1, 48, 16, 16), torch.tensor([2])
    y0 = m.encode_lr(lr)
    with torch.no_grad():  # y0 is computed from LR when not given, and it reaches the network
        torch.testing.assert_close(m(x_t, lr, t), m(x_t, lr, t, y0))
        assert (m(x_t, lr, t, y0 + 0.5) - m(x_t, lr, t, y0)).abs().max() > 1e-3


def test_patchgan_receptive_field_is_70():
    d = M.PatchGAN()
    assert sum(isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2) for m in d.modules()) == 3
    assert all(hasattr(m, "parametrizations") for m in d.modules() if isinstance(m, torch.nn.Conv2d))
    img = torch.rand(1, 3, 160, 160, requires_grad=True)
    logits = d(img)
    assert logits.shape == (1, 1, 18, 18)
    logits[0, 0, 9, 9].backward()
    rows = img.grad.abs().sum((0, 1, 3)).nonzero()
    cols = img.grad.abs().sum((0, 1, 2)).nonzero()
    assert rows.max() - rows.min() + 1 == 70 and cols.max() - cols.min() + 1 == 70


# ------------------------------------------------------------------ checkpoints


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path, tiny):
    path = tmp_path / "run" / "teacher.pt"
    C.save_checkpoint(path, tiny, "light", step=7)
    assert not list(path.parent.glob("*.tmp"))
    loaded = C.load_checkpoint(path, kind="teacher")
    assert loaded.cfg == tiny.cfg and loaded.kind == "teacher" and not loaded.training
    lr, eps = photo(size=16), torch.randn(1, 48, 16, 16)
    assert torch.equal(loaded.upscale(lr, eps, steps=2), tiny.upscale(lr, eps, steps=2))
    assert C.read_checkpoint(path)["step"] == 7


def test_bad_checkpoints_are_refused_by_name(tmp_path, tiny):
    with pytest.raises(FileNotFoundError, match="missing.pt does not exist .expected a student checkpoint"):
        C.load_checkpoint(tmp_path / "missing.pt", kind="student")
    torch.save({"format": C.FORMAT, "kind": "teacher"}, tmp_path / "partial.pt")
    with pytest.raises(ValueError, match="partial.pt is not a vpdsr checkpoint"):
        C.load_checkpoint(tmp_path / "partial.pt")
    good = tmp_path / "teacher.pt"
    C.save_checkpoint(good, tiny, "light", 0)
    cut = tmp_path / "truncated.pt"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated.pt.*truncated or corrupt"):
        C.load_checkpoint(cut)
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(ValueError, match="other.pt is not a vpdsr checkpoint"):
        C.load_checkpoint(other)
    with pytest.raises(ValueError, match="holds a teacher, but a student"):
        C.load_checkpoint(good, kind="student")
    obj = torch.load(good, weights_only=True)
    obj["config"]["size"] = "base"  # weights of a tiny network, config of a base one
    torch.save(obj, tmp_path / "mismatch.pt")
    with pytest.raises(ValueError, match="mismatch.pt: the weights do not fit"):
        C.load_checkpoint(tmp_path / "mismatch.pt")


# ------------------------------------------------------------------ the preconditioned output


def test_precond_coefficients_are_the_best_linear_guess_and_its_error():
    """c_skip and c_out against a least-squares fit on samples of the forward process: with d ~ N(0, σ_d²),
    u = x_t − y₀ = (1 − η_t)·d + κ√η_t·ε, the fitted slope of d on u is c_skip, and the residual's
    standard deviation is c_out."""
    m = SRModel(ModelConfig(size="tiny", T=4, kappa=0.5, min_noise_level=0.2, sigma_data=0.3))
    g = torch.Generator().manual_seed(0)
    n = 400_000
    for t in range(1, 5):
        eta = m.eta[t].item()
        d = 0.3 * torch.randn(n, generator=g, dtype=torch.float64)
        u = (1 - eta) * d + 0.5 * math.sqrt(eta) * torch.randn(n, generator=g, dtype=torch.float64)
        slope = (u * d).sum() / (u * u).sum()
        c_in, c_skip, c_out = (c.item() for c in m.precond(torch.tensor([t])))
        assert c_skip == pytest.approx(slope.item(), rel=0.01, abs=4e-3)  # (abs: the slope's sampling error)
        assert c_out == pytest.approx((d - slope * u).std().item(), rel=0.01)
        assert c_in == pytest.approx(1 / u.std().item(), rel=0.01)


def test_untrained_precond_model_starts_from_the_linear_guess():
    """The last convolution starts at zero: the preconditioned output is y₀ + c_skip·(x_t − y₀), which is y₀
    (the bicubic upscale) at t = T up to η_T's remainder."""
    torch.manual_seed(0)
    m = SRModel(ModelConfig(size="tiny", T=15)).eval()
    lr = photo(size=32)
    y0 = m.encode_lr(lr)
    x_t = y0 + 0.3 * torch.randn_like(y0)
    for t in (1, 8, 15):
        c_skip = m.precond(torch.tensor([t]))[1]
        torch.testing.assert_close(m(x_t, lr, t), y0 + c_skip * (x_t - y0))
        torch.testing.assert_close(m(x_t, lr, t, y0), m(x_t, lr, t))  # y₀ passed or computed: the same


@pytest.mark.parametrize("sigma_d", [0.2, 0.1])
def test_untrained_precond_sampler_turns_noise_into_white_detail_of_about_sigma_d(sigma_d):
    """With F = 0 the preconditioned output is the posterior mean for a white Gaussian x₀ − y₀ of standard
    deviation σ_d, and the deterministic sampler carries ε into the sample as "detail" of that kind: white,
    a little below σ_d in amplitude (the discrete steps shrink it). So σ_d sets how much texture a network
    that has learned little will invent."""
    torch.manual_seed(0)
    m = SRModel(ModelConfig(size="tiny", T=4, kappa=0.25, min_noise_level=0.04, sigma_data=sigma_d)).eval()
    lr = photo(size=32)
    y0 = m.encode_lr(lr).expand(16, -1, -1, -1)
    eps = torch.randn(y0.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        detail = M.sample_deterministic(m, m.prior_sample(y0, eps), y0, lr.expand(16, -1, -1, -1)) - y0
    assert 0.5 * sigma_d < detail.std().item() < sigma_d
    img = torch.nn.functional.pixel_shuffle(detail, 4)  # neighbouring pixels: uncorrelated
    corr = (img[..., 1:] * img[..., :-1]).mean() / img.var()
    assert abs(corr.item()) < 0.05


def test_16_bit_checkpoints_load_back_as_fp32(tmp_path, tiny):
    """Distributed weights may be stored at 16 bits: half the file, and fp32 parameters again once loaded."""
    C.save_checkpoint(tmp_path / "full.pt", tiny, "light", 0)
    C.save_checkpoint(tmp_path / "half.pt", tiny, "light", 0, dtype=torch.float16)
    assert (tmp_path / "half.pt").stat().st_size < 0.6 * (tmp_path / "full.pt").stat().st_size
    assert all(v.dtype == torch.float16 for v in C.read_checkpoint(tmp_path / "half.pt")["weights"].values()
               if v.is_floating_point())
    loaded = C.load_checkpoint(tmp_path / "half.pt")
    assert all(p.dtype == torch.float32 for p in loaded.net.parameters())
    for (k, a), b in zip(tiny.net.state_dict().items(), loaded.net.state_dict().values()):
        torch.testing.assert_close(b, a.half().float(), rtol=0, atol=0, msg=k)  # exactly the rounded weights


def test_manifest_refuses_a_flipped_bit_by_name(tmp_path, tiny):
    C.save_checkpoint(tmp_path / "student.pt", M.make_student(tiny), "light", 0, dtype=torch.float16)
    C.save_checkpoint(tmp_path / "other.pt", tiny, "light", 0)  # not listed: loads without a check
    manifest = export.write_manifest(tmp_path, ["student.pt"])
    assert manifest.read_text().split() == [sha256_file(tmp_path / "student.pt"), "student.pt"]
    assert C.verify(tmp_path / "student.pt") and not C.verify(tmp_path / "other.pt")
    C.load_checkpoint(tmp_path / "student.pt", kind="student")
    data = bytearray((tmp_path / "student.pt").read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit, somewhere in the weights
    (tmp_path / "student.pt").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="student.pt does not match its SHA-256 in .*SHA256SUMS.*corrupt or was"):
        C.load_checkpoint(tmp_path / "student.pt")
    C.load_checkpoint(tmp_path / "other.pt")
