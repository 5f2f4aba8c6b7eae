"""Tests of runtime.py: the one device and precision policy of train.py, sample.py and evaluate.py."""

import pytest
import torch

import runtime


def test_precision_policy(monkeypatch, capsys):
    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)  # (the policy reads the device type only)
    for name in runtime.PRECISIONS:  # the CPU always runs fp32; asking for half precision there says so
        assert runtime.resolve_precision(name, cpu) == torch.float32
    assert "not used on the CPU" in capsys.readouterr().out
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert runtime.resolve_precision("auto", gpu) == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    assert runtime.resolve_precision("auto", gpu) == torch.float16  # an older GPU: fp16 (train.py scales the loss)
    assert runtime.resolve_precision("fp32", gpu) == torch.float32
    with pytest.raises(ValueError, match="auto, bf16, fp16, fp32"):
        runtime.resolve_precision("fp8", cpu)


def test_train_sample_and_evaluate_share_the_policy():
    import config
    import evaluate
    import sample
    import train

    for name in ("resolve_precision", "resolve_device"):
        assert getattr(sample, name) is getattr(evaluate, name) is getattr(train, name) is getattr(runtime, name)
    args, _ = config.parse_args(["--precision", "fp16"])
    assert args.precision == "fp16"


def test_autocast_is_off_in_fp32():
    with runtime.autocast(torch.device("cpu"), torch.float32):
        assert not torch.is_autocast_enabled("cpu")
    with runtime.autocast(torch.device("cpu"), torch.bfloat16):
        assert torch.is_autocast_enabled("cpu")
