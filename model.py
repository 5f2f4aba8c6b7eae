"""
model.py: the networks of VPD-SR and the diffusion process they live in.

    latent       image <-> latent: pixel_unshuffle by 4 (no weights; ResShift uses a VQGAN here)
    schedule     η_1..η_T of ResShift, and the forward process x_t = x₀ + η_t·(y₀ − x₀) + κ·√η_t·ε
    SRModel      the UNet f_θ(x_t, LR, y₀, t) → x̂₀ with its schedule, its output read as a correction
                   preconditioned around y₀ (EDM-style). The same class is the teacher: sampled in T steps
                   (deterministic SinSR, or ancestral ResShift), and the student: the same network evaluated
                   once, at t = T.
    PatchGAN     the discriminator of the adversarial loss
(Saving and loading these networks is checkpoint.py's; the training settings around them, config.py's;
the losses, the teacher's included, losses.py's.)

Symbols, as in the papers (ResShift, Yue et al. 2023; SinSR, Wang et al. 2024):
    x₀ = encode(HR)             the latent of the high-resolution image
    y₀ = encode(bicubic↑(LR))   the latent of the upscaled low-resolution image
    e₀ = y₀ − x₀                the residual that diffusion shifts into the sample
    η_t, t = 1..T               the shifting schedule, 0 < η_1 < ... < η_T ≈ 1 (η_0 = 0)
    κ                           the noise scale
    ε ~ N(0, I)                 the noise; given ε, the deterministic teacher is a function of (LR, ε)
"""

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from degrade import SCALE

# --- Settings: saved into every checkpoint, so that a file alone rebuilds its model

# The network sizes (--size). `base` is the network for one GPU (74.2 M parameters); `tiny` (2.1 M) is for tests
# and the CPU demo. Attention only at the two lowest resolutions (1/4 and 1/8 of the latent size), where its
# cost, quadratic in the number of pixels, stays affordable. The first level is at least as
# wide as the latent's 48 channels: narrower, it bottlenecks the whole network (measured on
# the demo: 32 channels lost 4-5 dB PSNR against 64).
NETWORKS = {
    "tiny": dict(block_out_channels=(64, 64, 64, 64), layers_per_block=1),
    "base": dict(block_out_channels=(128, 256, 256, 512), layers_per_block=2),
}


@dataclass(frozen=True)
class ModelConfig:
    """Everything that rebuilds a network and its schedule: the recipe the studies chose for the pixel latent
    (docs/RESULTS.md, "The recipe study" and "How the recipe was chosen on the photo corpus"). ResShift's own
    settings (T = 15, κ = 2) were made for a VQGAN latent of standard deviation ≈ 1; on pixels, whose residual
    x₀ − y₀ has a spread of 0.05 to 0.2 (python tools/study.py --sigma-data), its samplers drifted into noise:
    T = 4 and κ = 0.25 keep the structure."""

    size: str = "base"  # network size: a key of NETWORKS
    T: int = 4  # diffusion steps of the teacher
    kappa: float = 0.25  # κ, the noise scale
    min_noise_level: float = 0.04  # sets √η_1 = min(min_noise_level/κ, min_noise_level): κ·√η_1 = 0.01 here
    sigma_data: float = 0.03  # σ_d, the spread of x₀ − y₀ the output assumes (SRModel.precond; config.py: why)


# --- The latent: where the diffusion runs

# ResShift diffuses in the latent of a VQGAN that downsamples by 4, so that the latent has the LR image's size
# and the LR image can be concatenated to it. This project uses the lossless, weight-free pixel_unshuffle by
# SCALE in its place: an image (B,3,H,W) in [0,1] becomes a (B,48,H/4,W/4) latent in [−1,1], of the LR image's
# size too. Nothing is learned or lost in it, and it needs no weights that could not be had offline.
LATENT_CHANNELS = 3 * SCALE * SCALE


def encode(img):
    return F.pixel_unshuffle(img * 2 - 1, SCALE)


def decode(z):
    return (F.pixel_shuffle(z, SCALE) + 1) / 2


# --- The schedule

# ResShift's schedule shape: its power p and its last level √η_T.
P, SQRT_ETA_T = 0.3, 0.99


def eta_schedule(cfg: ModelConfig = ModelConfig()):
    """η_0, η_1, ..., η_T (η_0 = 0, so that index t holds η_t) of ResShift's schedule, for cfg's T, κ and
    min_noise_level, with p = P and √η_T = SQRT_ETA_T:

        √η_1 = min(min_noise_level/κ, min_noise_level)
        b    = exp( ln(√η_T / √η_1) / (T − 1) )
        β_t  = ((t − 1)/(T − 1))^p · (T − 1)
        √η_t = √η_1 · b^β_t

    A geometric progression of √η from √η_1 to √η_T, bent by the power p. With p < 1, β_t rises fastest at
    the first steps, so √η leaves its small values quickly and the later steps crowd near η_T: with T = 4,
    β = 0, 2.16, 2.66, 3 instead of the geometric 0, 1, 2, 3.
    """
    T, kappa = cfg.T, cfg.kappa
    if T < 2:
        raise ValueError(f"T = {T}: the schedule needs at least 2 steps")
    sqrt_eta_1 = min(cfg.min_noise_level / kappa, cfg.min_noise_level)
    b = math.exp(math.log(SQRT_ETA_T / sqrt_eta_1) / (T - 1))
    t = torch.arange(1, T + 1, dtype=torch.float64)
    beta = ((t - 1) / (T - 1)) ** P * (T - 1)
    sqrt_eta = sqrt_eta_1 * b**beta
    return torch.cat([torch.zeros(1, dtype=torch.float64), sqrt_eta**2])


# --- The model: teacher and student


def build_unet(size):
    """f_θ: a diffusers UNet2DModel whose input is [c_in·(x_t − y₀), y₀, LR] (48 + 48 + 3 channels, all of the
    latent's size) and whose output is F, the correction of SRModel.forward."""
    from diffusers import UNet2DModel

    if size not in NETWORKS:
        raise ValueError(f"unknown network size '{size}' (choose from {', '.join(NETWORKS)})")
    net = NETWORKS[size]
    n = len(net["block_out_channels"])
    return UNet2DModel(
        in_channels=2 * LATENT_CHANNELS + 3, out_channels=LATENT_CHANNELS,
        down_block_types=("DownBlock2D",) * (n - 2) + ("AttnDownBlock2D",) * 2,
        up_block_types=("AttnUpBlock2D",) * 2 + ("UpBlock2D",) * (n - 2),
        norm_num_groups=min(32, net["block_out_channels"][0]), attention_head_dim=8, **net,
    )


class SRModel(nn.Module):
    """The network f_θ(x_t, LR, t) → x̂₀ together with its schedule.

    kind = "teacher": sampled in T steps by sample_deterministic / sample_ancestral.
    kind = "student": the same network evaluated once: x̂₀ = f_φ(x_T, LR, T) with x_T = y₀ + κ√η_T·ε.

    `net` is the UNet as it runs. Whoever needs it compiled or run in tiles replaces `net` by a module that
    wraps it (train.py, sample.py), and keeps the unwrapped one to optimise or save.
    """

    def __init__(self, cfg: ModelConfig, kind="teacher"):
        super().__init__()
        if kind not in ("teacher", "student"):
            raise ValueError(f"kind must be 'teacher' or 'student', not '{kind}'")
        self.cfg, self.kind = cfg, kind
        self.net = build_unet(cfg.size)
        # F = 0 at the start: the untrained model returns the linear guess (precond below).
        nn.init.zeros_(self.net.conv_out.weight)
        nn.init.zeros_(self.net.conv_out.bias)
        # x_t's input weights start at zero too. At t = T, x_t is almost pure noise (48 unit-variance channels
        # beside the condition): with random weights that noise swamps the first layer, and the one call
        # learns slowly or not at all (measured with the LR image as the only condition: +0.42 dB over
        # bicubic instead of −0.03). From zero, the network learns first from the condition (LR, y₀), as a
        # plain regression would, and grows the x_t weights where x_t carries information.
        with torch.no_grad():
            self.net.conv_in.weight[:, :LATENT_CHANNELS].zero_()
        eta = eta_schedule(cfg)
        self.register_buffer("eta", eta.float(), persistent=False)  # rebuilt from cfg, not saved
        # The UNet halves the latent len(blocks) − 1 times: inputs must be a multiple of this.
        self.multiple = 2 ** (len(NETWORKS[cfg.size]["block_out_channels"]) - 1)

    # -- the latent and the LR condition

    # The module's encode and decode above, as methods: x₀ = model.encode(HR), SR = model.decode(x̂₀)
    encode, decode = staticmethod(encode), staticmethod(decode)

    def encode_lr(self, lr):
        """y₀ = encode(bicubic↑(LR)): the LR image, upscaled to the HR size, in latent space."""
        up = F.interpolate(lr, scale_factor=SCALE, mode="bicubic", align_corners=False)
        return self.encode(up.clamp(0, 1))

    # -- the forward process

    def q_sample(self, x0, y0, t, eps):
        """x_t = x₀ + η_t·(y₀ − x₀) + κ·√η_t·ε, for a batch of timesteps t (B,) in 1..T."""
        eta = self.eta[t].view(-1, 1, 1, 1)
        return x0 + eta * (y0 - x0) + self.cfg.kappa * eta.sqrt() * eps

    def prior_sample(self, y0, eps):
        """x_T = y₀ + κ·√η_T·ε: where every sampler starts. q_sample at t = T would add (1 − η_T)·(x₀ − y₀)
        (x₀ is unknown at inference; with √η_T = 0.99 that is 2% of the residual, and it is dropped)."""
        return y0 + self.cfg.kappa * self.eta[self.cfg.T].sqrt() * eps

    def one_step(self, x_T, lr, y0):
        """VPD-SR's student: x̂₀ = f(x_T, LR, T), one network call at t = T and nothing else. The same call
        of a teacher is its "one call"."""
        return self(x_T, lr, self.cfg.T, y0)

    def precond(self, t):
        """(c_in, c_skip, c_out) at timesteps t, derived from the forward process.

        Around y₀ the forward process reads  x_t − y₀ = a·d + s·ε  with d = x₀ − y₀, a = 1 − η_t and
        s = κ√η_t. If d has zero mean and variance σ_d², the best linear guess of d from x_t − y₀, and the
        error it leaves, are

            c_skip = a·σ_d² / (a²σ_d² + s²)           d̂ = c_skip·(x_t − y₀)
            c_out  = σ_d·s / √(a²σ_d² + s²)           the standard deviation of d − d̂
            c_in   = 1 / √(a²σ_d² + s²)               scales x_t − y₀ to unit variance for the network

        so x̂₀ = y₀ + c_skip·(x_t − y₀) + c_out·F asks F for a unit-variance correction at every t. At t = T
        (a ≈ 0) x̂₀ starts at y₀, the bicubic upscale; at small t (s ≈ 0) it starts at x_t itself. This is
        EDM's preconditioning (Karras et al. 2022, with a = 1 there), written for ResShift's process.
        With F = 0 it is the exact posterior mean for a white Gaussian d, so a sampler run with it turns ε
        into white "detail" of about σ_d: σ_d also sets how much texture an under-trained F invents.
        """
        eta = self.eta[t].view(-1, 1, 1, 1)
        a, s2, sd2 = 1 - eta, self.cfg.kappa**2 * eta, self.cfg.sigma_data**2
        var = a**2 * sd2 + s2
        return var.rsqrt(), a * sd2 / var, (sd2 * s2 / var).sqrt()

    def forward(self, x_t, lr, t, y0=None):
        """x̂₀ = y₀ + c_skip·(x_t − y₀) + c_out·F(c_in·(x_t − y₀), y₀, LR, t). t: an int or a (B,) tensor of
        timesteps in 1..T. y₀ = encode_lr(LR) is computed when not given (the samplers pass it once).

        ResShift's network predicts x₀ itself from x_t and the LR image alone. Both lost on pixels, in the
        studies of docs/RESULTS.md: x₀ prediction (and the residual y₀ − x₀) to this preconditioned
        correction, which holds x̂₀ at the best linear guess wherever F has learned nothing; the LR image
        alone to the LR image with y₀, its bicubic upscale laid out like x₀ (as SR3 does, Saharia et al.
        2021), which hands the network at t = T, where x_t is almost pure noise, something to correct."""
        if isinstance(t, int):  # (torch.full, not as_tensor: no blocking host-to-device copy per call)
            t = torch.full((x_t.shape[0],), t, device=x_t.device)
        y0 = self.encode_lr(lr) if y0 is None else y0
        c_in, c_skip, c_out = self.precond(t)
        u = x_t - y0
        return y0 + c_skip * u + c_out * self.net(torch.cat([c_in * u, y0, lr * 2 - 1], 1), t, return_dict=False)[0]

    # -- inference

    def timesteps(self, steps=None):
        """The descending timesteps a sampler visits: all of T..1, or `steps` of them, evenly spaced."""
        T = self.cfg.T
        steps = T if steps is None else steps
        if not 1 <= steps <= T:
            raise ValueError(f"steps must be in 1..{T}, not {steps}")
        return sorted({round(T - i * (T - 1) / max(steps - 1, 1)) for i in range(steps)}, reverse=True)

    @torch.no_grad()
    def upscale(self, lr, eps=None, steps=None, sampler="deterministic", generator=None):
        """LR (B,3,h,w) in [0,1] -> SR (B,3,4h,4w) in [0,1]; h and w must be multiples of self.multiple.

        The student takes one step; the teacher runs its sampler (all T steps unless `steps` says fewer).
        ε is drawn from `generator` unless given, on the CPU: a seed gives the same ε on every device (the
        image itself still differs slightly between devices and precisions, as their arithmetic does).
        """
        y0 = self.encode_lr(lr)
        if eps is None:
            eps = torch.randn(y0.shape, generator=generator, device="cpu").to(y0)
        x_T = self.prior_sample(y0, eps)
        if self.kind == "student" or steps == 1:  # VPD-SR's one step
            z = self.one_step(x_T, lr, y0)
        elif sampler == "deterministic":
            z = sample_deterministic(self, x_T, y0, lr, steps)
        elif sampler == "ancestral":
            z = sample_ancestral(self, x_T, y0, lr, steps, generator)
        else:
            raise ValueError(f"unknown sampler '{sampler}' (deterministic or ancestral)")
        return self.decode(z).clamp(0, 1)


@torch.no_grad()
def sample_deterministic(model, x_T, y0, lr, steps=None):
    """SinSR's deterministic sampler (a DDIM-like ODE for ResShift), from x_T = y₀ + κ√η_T·ε (prior_sample):

        x_s = k·x̂₀ + m·x_t + j·y₀,   for consecutive visited timesteps t > s (s = t − 1 with all T steps;
                                      t_next in the code)
        m = √(η_s/η_t),   j = η_s − √(η_s·η_t),   k = 1 − η_s + √(η_s·η_t) − √(η_s/η_t)

    Given x_T the result is a deterministic function of (LR, x_T): the target the student distills.
    """
    eta = model.eta
    ts = model.timesteps(steps)
    x = x_T
    for t, t_next in zip(ts, ts[1:] + [0]):  # t_next = 0 ends at η_0 = 0: m = j = 0, k = 1, so x = x̂₀
        x0_hat = model(x, lr, t, y0)  # the network's guess of the end point, from where the path is now
        # Re-noise x̂₀ to level t_next with the very noise that x_t implies (DDIM's idea): no fresh noise.
        m = torch.sqrt(eta[t_next] / eta[t])
        j = eta[t_next] - torch.sqrt(eta[t_next] * eta[t])
        k = 1 - eta[t_next] + torch.sqrt(eta[t_next] * eta[t]) - m
        x = k * x0_hat + m * x + j * y0
    return x


@torch.no_grad()
def sample_ancestral(model, x_T, y0, lr, steps=None, generator=None):
    """ResShift's ancestral sampler, from x_T = y₀ + κ√η_T·ε (prior_sample): draw x_s from the posterior
    q(x_s | x_t, x̂₀),

        mean = (η_s/η_t)·x_t + (α/η_t)·x̂₀,   variance = κ²·(η_s/η_t)·α,   α = η_t − η_s

    with no noise on the last step (t_next = 0 gives mean = x̂₀ and variance 0).
    """
    eta, kappa = model.eta, model.cfg.kappa
    ts = model.timesteps(steps)
    x = x_T
    for t, t_next in zip(ts, ts[1:] + [0]):
        x0_hat = model(x, lr, t, y0)
        alpha = eta[t] - eta[t_next]
        # The mean of q(x_{t_next} | x_t, x̂₀): a blend of where the path is and where the network says it ends
        x = (eta[t_next] / eta[t]) * x + (alpha / eta[t]) * x0_hat
        if t_next > 0:  # z ~ N(0, I), drawn on the CPU so that a seed gives the same result on every device
            z = torch.randn(x.shape, generator=generator, device="cpu").to(x)
            x = x + kappa * torch.sqrt(eta[t_next] / eta[t] * alpha) * z
    return x


def make_student(teacher: SRModel):
    """The one-step student starts as a copy of the teacher's network (its EMA weights, as saved)."""
    student = SRModel(teacher.cfg, kind="student")
    student.net.load_state_dict(teacher.net.state_dict())
    return student.to(teacher.eta.device)


# --- The discriminator


class PatchGAN(nn.Module):
    """The pix2pix / taming-transformers NLayerDiscriminator with spectral norm in place of batch norm:
    three stride-2 4×4 convolutions, one stride-1, then a 1-channel 4×4 convolution giving one logit per
    70×70 patch of the input. Takes images in [0,1] (mapped to [−1,1] inside)."""

    def __init__(self, in_channels=3, width=64, n_strided=3):
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm  # keeps D 1-Lipschitz per layer: stable GAN training
        layers, ch = [sn(nn.Conv2d(in_channels, width, 4, 2, 1)), nn.LeakyReLU(0.2)], width
        for i in range(1, n_strided):
            out = width * min(2**i, 8)
            layers += [sn(nn.Conv2d(ch, out, 4, 2, 1)), nn.LeakyReLU(0.2)]
            ch = out
        out = width * min(2**n_strided, 8)
        layers += [sn(nn.Conv2d(ch, out, 4, 1, 1)), nn.LeakyReLU(0.2), sn(nn.Conv2d(out, 1, 4, 1, 1))]
        self.layers = nn.Sequential(*layers)

    def forward(self, img):
        return self.layers(img * 2 - 1)
