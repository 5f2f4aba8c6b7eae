"""Fixtures shared by the test files."""

import pytest
import torch

import checkpoint as C
import model as M


@pytest.fixture(scope="session")
def ckpts(tmp_path_factory):
    """A tiny teacher and its student, random weights, saved as train.py would: teacher.pt, student.pt. ResShift's
    settings (x₀ output): an untrained network's answer then depends on every input, which the tests need."""
    root = tmp_path_factory.mktemp("runs")
    torch.manual_seed(0)
    teacher = M.SRModel(M.ModelConfig(size="tiny", **M.RESSHIFT))
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


