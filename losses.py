"""
losses.py: the training objectives of VPD-SR's student (and the teacher's own).

The paper distills a multi-step diffusion teacher into a one-step student. Matching the teacher alone
(vanilla distillation) loses semantic fidelity and texture; VPD-SR adds two perception losses and a GAN:

    L = λ_dist·L_dist + λ_ess·L_ess + λ_hfp·L_hfp + λ_adv·L_adv

    distillation   L_dist = ‖f_φ(x_T, LR, T) − S_θ(x_T, LR)‖²       match the teacher's T-step result
    ess            L_ess  = 1 − cos(φ_CLIP(SR), φ_CLIP(HR))          Explicit Semantic-aware Supervision
    hfp            L_hfp  = mean(M ⊙ |log(1+|F(SR)|) − log(1+|F(HR)|)|)   High-Frequency Perception
    g_hinge        L_adv  = −E[D(SR)]                                the student fools the PatchGAN
    d_hinge        L_D    = E[relu(1 − D(HR))] + E[relu(1 + D(SR))]  the PatchGAN's own loss

The paper's exact formulas are not public; these are the project's definitions, faithful to its
description (see README, "Known differences from the paper"). The teacher trains with
`teacher_loss`, ResShift's ‖f_θ(x_t, LR, t) − x₀‖².
"""

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from model import hub_reachable, sample_deterministic

# ---------------------------------------------------------------------------------------------------
# Diffusion losses
# ---------------------------------------------------------------------------------------------------


def teacher_loss(x0_hat, x0, weight=None):
    """ResShift's training loss: the network predicts x₀ from x_t, at a uniformly random t. `weight` (B,)
    weighs each sample's squared error by its timestep (SRModel.loss_weight); None is ResShift's uniform."""
    per_sample = (x0_hat.float() - x0.float()).pow(2).flatten(1).mean(1)
    return per_sample.mean() if weight is None else (weight * per_sample).mean()


@torch.no_grad()
def distillation_target(teacher, y0, lr, eps):
    """S_θ(x_T, LR): the frozen teacher's deterministic T-step sample from x_T = y₀ + κ√η_T·ε. Given ε it
    is a function of LR alone, which is what makes one-step distillation well posed."""
    return sample_deterministic(teacher, y0, lr, eps)


def distillation(x0_student, x0_teacher):
    """Vanilla distillation: the student's one-step x̂₀ against the teacher's T-step result, in latent space."""
    return F.mse_loss(x0_student.float(), x0_teacher.float())


# ---------------------------------------------------------------------------------------------------
# ESS: Explicit Semantic-aware Supervision with a frozen CLIP image encoder
# ---------------------------------------------------------------------------------------------------


def ess(clip, sr, hr):
    """L_ess = 1 − cos(φ(SR), φ(HR)), in [0, 2]. The target is the real HR image, not the teacher: that is
    the "explicit" supervision. φ(HR) needs no gradient; φ(SR) passes its gradient back into SR."""
    with torch.no_grad():  # the real image's embedding is a fixed target
        target = clip(hr)
    # The encoder returns unit-length embeddings, so their dot product is the cosine similarity.
    return (1 - (clip(sr) * target).sum(-1)).mean()


# ---------------------------------------------------------------------------------------------------
# HFP: High-Frequency Perception
# ---------------------------------------------------------------------------------------------------


def high_pass_mask(h, w, cutoff, device=None):
    """M: 1 where the normalized frequency radius ρ = |f| / f_Nyquist is at least `cutoff`, else 0.
    ρ runs from 0 (DC) to 1 at the Nyquist frequency along an axis (√2 in the corners)."""
    fy = torch.fft.fftfreq(h, device=device).view(-1, 1)
    fx = torch.fft.fftfreq(w, device=device).view(1, -1)
    return (torch.sqrt(fx**2 + fy**2) / 0.5 >= cutoff).float()


def hfp(sr, hr, cutoff=0.25):
    """L_hfp = mean(M ⊙ |log(1+|F(SR)|) − log(1+|F(HR)|)|), with F the orthonormal 2-D FFT per channel.

    The log keeps the huge low-frequency amplitudes from dominating; the mask keeps the loss about
    detail. The default cutoff, a quarter of Nyquist, is where a ×4 LR image's own spectrum ends: above
    it, every bit of detail must be restored by the network. On a square crop that band is most of the
    spectrum: the disc of radius 0.25 left out holds π·0.25²/4 ≈ 5% of the coefficients, so the loss
    compares the other 95%, which are the ones bicubic upscaling leaves (nearly) empty.
    """
    # Amplitudes only: the phase says where detail is, and detail invented at a slightly different place
    # is not an error for a perception loss. fp32: an FFT in half precision loses the small amplitudes.
    amp = lambda x: torch.log1p(torch.fft.fft2(x.float(), norm="ortho").abs())  # noqa: E731
    mask = high_pass_mask(*sr.shape[-2:], cutoff, device=sr.device)  # the band bicubic leaves empty
    return (mask * (amp(sr) - amp(hr)).abs()).mean()


# ---------------------------------------------------------------------------------------------------
# Adversarial (hinge) losses for the PatchGAN
# ---------------------------------------------------------------------------------------------------


def d_hinge(real_logits, fake_logits):
    """L_D = E[relu(1 − D(HR))] + E[relu(1 + D(SR))]: push real patches above +1 and fakes below −1."""
    return F.relu(1 - real_logits.float()).mean() + F.relu(1 + fake_logits.float()).mean()


def g_hinge(fake_logits):
    """L_adv = −E[D(SR)]: the student raises the discriminator's score of its outputs."""
    return -fake_logits.float().mean()


# ---------------------------------------------------------------------------------------------------
# Loading the frozen CLIP of ESS (plumbing: open_clip names, local files, a random stand-in for tests)
# ---------------------------------------------------------------------------------------------------


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


def tiny_random_clip():
    """A 2-layer ViT with random weights: ESS without semantics, for tests, the CPU demo and --clip random."""
    import open_clip

    with torch.random.fork_rng(devices=[]):  # always the same random weights, whatever the global RNG
        torch.manual_seed(0)
        clip = open_clip.model.CLIP(
            embed_dim=64,
            vision_cfg=dict(image_size=64, patch_size=16, width=64, layers=2, head_width=32),
            text_cfg=dict(context_length=8, vocab_size=64, width=32, heads=2, layers=1),
        )
    return CLIPImageEncoder(clip.visual, (64, 64), open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD,
                            semantic=False, name="random")


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
    """The frozen CLIP image encoder of the ESS loss.

    spec: "NAME:PRETRAINED" (an open_clip model name and weight tag, e.g. ViT-B-32:openai),
    "NAME:/path/weights.pt" (local weights for that architecture), a bare path (ViT-B-32 weights), or
    "random" (a tiny random encoder: no semantics). Weights that cannot be had fail within seconds.
    pretrained=False builds the architecture with random weights: for timing only (train.py --benchmark).
    """
    import open_clip

    if spec == "random":
        return tiny_random_clip()
    name, _, weights = spec.partition(":")
    if Path(spec).is_file():
        name, weights = "ViT-B-32", spec
    if name not in open_clip.list_models():
        raise ValueError(f"--clip {spec}: open_clip has no model '{name}' (see open_clip.list_models())")
    tag = {}  # what open_clip records about a weight tag: activation, normalization, where to download
    if weights and not Path(weights).is_file():
        tag = open_clip.get_pretrained_cfg(name, weights)
        if not tag:
            tags = ", ".join(open_clip.list_pretrained_tags_by_model(name)) or "none"
            raise ValueError(f"--clip {spec}: no weights '{weights}' for {name} (known: {tags})")
    source = weights if pretrained else ""
    if tag and pretrained:
        cached = cached_clip_weights(name, weights)
        if cached:
            source = cached
        elif not hub_reachable():
            raise RuntimeError(
                f"cannot load the CLIP weights {name}:{weights}: the Hugging Face hub cannot be reached "
                f"from here and they are not in the local cache.\nPass a local file (--clip {name}:/path/to/"
                f"open_clip_model.safetensors, downloaded elsewhere), or train without semantics (--clip random)."
            )
    try:
        # The tag's own settings must be applied by hand once `source` is a file path: OpenAI's weights,
        # for one, were trained with QuickGELU, not the GELU the architecture's config names.
        clip = open_clip.create_model(name, pretrained=source or None, force_quick_gelu=tag.get("quick_gelu", False))
    except Exception as e:  # download or format errors from open_clip / huggingface_hub
        raise RuntimeError(f"cannot load the CLIP weights {spec}: {e}\nPass a local file, or --clip random.") from None
    pp = getattr(clip.visual, "preprocess_cfg", {}) or {}
    size = clip.visual.image_size
    size = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
    mean = tag.get("mean") or pp.get("mean") or open_clip.OPENAI_DATASET_MEAN
    std = tag.get("std") or pp.get("std") or open_clip.OPENAI_DATASET_STD
    return CLIPImageEncoder(clip.visual, size, mean, std, semantic=bool(source),
                            name=spec if source else f"{name}, random weights")
