"""Fixtures shared by the test files."""

import pytest
import torch

import checkpoint as C
import model as M


# ResShift's published schedule (T = 15, κ = 2): more steps to test the samplers on than the default's 4
RESSHIFT_SCHEDULE = dict(T=15, kappa=2.0)


def untrained(model):
    """The model with random weights everywhere: its last convolution and x_t's input weights start at zero
    (model.py says why), which would make an untrained network ignore x_t. The tests need every input to matter."""
    with torch.no_grad():
        model.net.conv_in.reset_parameters()
        model.net.conv_out.reset_parameters()
    return model


@pytest.fixture(scope="session")
def ckpts(tmp_path_factory):
    """A tiny teacher and its student, random weights (untrained), saved as train.py would: teacher.pt,
    student.pt."""
    root = tmp_path_factory.mktemp("runs")
    torch.manual_seed(0)
    teacher = untrained(M.SRModel(M.ModelConfig(size="tiny", **RESSHIFT_SCHEDULE)))
    C.save_checkpoint(root / "teacher.pt", teacher, "bicubic", 0)
    C.save_checkpoint(root / "student.pt", M.make_student(teacher), "bicubic", 0)
    return root


def photo(name="astronaut", size=None, batch=True, dtype=torch.float32):
    """A real photo from scikit-image (RGB) as a float tensor in [0,1]: (1,3,H,W), or (3,H,W) when
    batch=False. size: None (the whole photo), an int (the top-left size×size crop) or (h, w)."""
    import skimage.data

    arr = getattr(skimage.data, name)()
    if size is not None:
        h, w = (size, size) if isinstance(size, int) else size
        arr = arr[:h, :w]
    img = torch.from_numpy(arr).permute(2, 0, 1).to(dtype) / 255
    return img[None] if batch else img


