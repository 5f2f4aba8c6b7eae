"""Fixtures shared by the test files."""

import pytest
import torch

import model as M


@pytest.fixture(scope="session")
def ckpts(tmp_path_factory):
    """A tiny teacher and its student, random weights, saved as train.py would: teacher.pt, student.pt."""
    root = tmp_path_factory.mktemp("runs")
    torch.manual_seed(0)
    teacher = M.SRModel(M.ModelConfig(preset="tiny"))
    M.save_checkpoint(root / "teacher.pt", teacher)
    M.save_checkpoint(root / "student.pt", M.make_student(teacher))
    return root
