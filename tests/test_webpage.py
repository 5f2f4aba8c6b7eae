"""Tests of tools/webpage.py: a report folder as one self-contained web page. CPU, a second.

    python -m pytest tests/test_webpage.py
"""

import re

import pytest
import torch

from tools import webpage
from data import save_png


def check_web_page(out, stems, methods):
    """index.html: a slider per image, pickers offering `methods` in order; every image it references, directly
    or through a picker, exists beside it, and nothing is fetched from elsewhere."""
    page = (out / "index.html").read_text()
    sources = re.findall(r'src="([^"]+)"', page)
    assert re.findall(r'data-stem="([^"]+)"', page) == stems and len(sources) == 2 * len(stems)
    options = re.findall(r'<option value="([^"]+)"', page)
    assert options == methods * 2 * len(stems)  # two pickers per slider
    referenced = set(sources) | {f"{m}/{s}.png" for m in methods for s in stems}
    assert all((out / ref).is_file() for ref in referenced), [r for r in referenced if not (out / r).is_file()]
    assert "http" not in page.replace("http-equiv", "") and "<script src" not in page  # self-contained, offline
    assert 'type="range"' in page and "clipPath" in page  # the sliders and the code that moves them
    return page


def test_a_report_folder_becomes_a_page(tmp_path, capsys):
    """A report as evaluate.py leaves it (images, metrics.csv, summary.md): the page shows its rows, its means
    (n/a where a metric has no number), its command and set-up, and a slider per image."""
    for stem, w in (("cat", 24), ("cup", 16)):
        for m in ("hr", "bicubic", "student", "my peer"):
            save_png(torch.rand(3, 8, w), tmp_path / m / f"{stem}.png")
        save_png(torch.rand(3, 2, w // 4), tmp_path / "lr" / f"{stem}.png")
    (tmp_path / "metrics.csv").write_text("image,method,psnr,lpips,latency_ms\n"
                                          "cat,bicubic,20.5,,1.0\ncat,student,inf,,\ncat,my peer,22.0,,\n"
                                          "cup,bicubic,21.5,,3.0\ncup,student,30.0,,\ncup,my peer,24.0,,\n")
    (tmp_path / "summary.md").write_text("# Evaluation\n\nCommand: `python evaluate.py --data x`\n\n## Set-up\n"
                                         "- checkpoints: student s.pt\n- LR inputs: degrade.py\n")
    assert webpage.main([str(tmp_path)]) == 0 and "index.html" in capsys.readouterr().out
    page = check_web_page(tmp_path, ["cat", "cup"], ["lr", "bicubic", "student", "my peer", "hr"])
    assert "<th>psnr</th>" in page and "lpips" not in page  # a metric with no number at all is left out
    assert "<td>bicubic</td><td>21</td><td>2</td>" in page  # the means: psnr (20.5 + 21.5) / 2, latency 2
    assert "<td>student</td><td>inf</td><td>n/a</td>" in page
    assert "Command: python evaluate.py --data x\n- checkpoints: student s.pt\n- LR inputs: degrade.py" in page
    assert 'width="24"' in page and 'width="16"' in page  # shown at the HR image's width
    with pytest.raises(SystemExit, match="no metrics.csv"):
        webpage.main([str(tmp_path / "lr")])
