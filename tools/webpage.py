"""
tools/webpage.py: an evaluation report (the folder evaluate.py writes) as a web page to look at: REPORT/index.html.

    python evaluate.py --data demo --out report
    python tools/webpage.py report                                       # writes report/index.html
    python tools/webpage.py report --screenshots docs/evaluation_page    # and checks it in headless Chromium

For every image, a before/after slider: two methods (bicubic, teacher, student, the HR image, ...) laid on top of
each other, the left one shown up to the slider and the right one after it, so that a reader can sweep across the
image and see what each method kept, lost or invented. Below it, that image's numbers; at the top, the mean table
and the set-up. It reads what evaluate.py wrote: metrics.csv (the numbers; the methods in its order), summary.md
(its Command and Set-up lines) and the image folders (<method>/<image>.png, hr/ and lr/ among them).

The page is one self-contained file: plain HTML, CSS and a few lines of JavaScript, no library and no network
access. It points at the PNGs beside it by relative paths, so the report folder can be copied or zipped as a
whole and opened offline. The initial state can be set in the address: index.html#pos=30&left=bicubic&right=student
puts every slider at 30 % with those two methods (what --screenshots, and the README's screenshot, use).
"""

import argparse
import html
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evaluate import fmt, mean, read_metrics  # noqa: E402

STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 14px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.cmp { position: relative; display: inline-block; max-width: 100%; line-height: 0; user-select: none; }
.cmp img { max-width: 100%; height: auto; image-rendering: pixelated; }
.cmp img.top { position: absolute; left: 0; top: 0; clip-path: inset(0 50% 0 0); }
.cmp .bar { position: absolute; top: 0; bottom: 0; left: 50%; width: 2px; background: #ff0; pointer-events: none; }
.cmp .tag { position: absolute; top: 6px; padding: 2px 6px; background: rgba(0,0,0,.6); color: #fff;
            font-size: 13px; line-height: 1.3; }
.cmp .tag.l { left: 6px; } .cmp .tag.r { right: 6px; }
.controls { margin: 6px 0; font-size: 14px; }
.controls input[type=range] { width: 420px; vertical-align: middle; }
pre { background: #f4f4f4; padding: 8px; white-space: pre-wrap; font-size: 13px; }
"""

# Moves the slider: clips the left image at the slider's position and labels both sides. The address may
# set the starting state (#pos=..&left=..&right=..).
SCRIPT = """
function update(box) {
  const pos = box.querySelector('input[type=range]').value;
  const left = box.querySelector('select.l').value, right = box.querySelector('select.r').value;
  const stem = box.dataset.stem;
  box.querySelector('img.top').src = left + '/' + stem + '.png';
  box.querySelector('img.bottom').src = right + '/' + stem + '.png';
  box.querySelector('img.top').style.clipPath = 'inset(0 ' + (100 - pos) + '% 0 0)';
  box.querySelector('.bar').style.left = pos + '%';
  box.querySelector('.tag.l').textContent = left;
  box.querySelector('.tag.r').textContent = right;
}
const wanted = Object.fromEntries(new URLSearchParams(location.hash.slice(1)));
for (const box of document.querySelectorAll('.slider')) {
  for (const el of box.querySelectorAll('input, select')) el.addEventListener('input', () => update(box));
  if (wanted.pos) box.querySelector('input[type=range]').value = wanted.pos;
  if (wanted.left) box.querySelector('select.l').value = wanted.left;
  if (wanted.right) box.querySelector('select.r').value = wanted.right;
  update(box);
}
"""


def table(rows, columns, first):
    """An HTML table: one row per dict, `first` the key of the first (label) column."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in [first, *columns])
    body = "".join("<tr>" + f"<td>{html.escape(str(r[first]))}</td>"
                   + "".join(f"<td>{fmt(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def slider(stem, width, methods, left, right):
    """One image's comparison: two stacked images (both shown `width` pixels wide: the LR input is stretched
    4× without interpolation), a range input and two method pickers."""
    def picker(side, chosen):
        options = "".join(f'<option value="{html.escape(m)}"{" selected" if m == chosen else ""}>'
                          f"{html.escape(m)}</option>" for m in methods)
        return f'<select class="{side}">{options}</select>'

    s = html.escape(stem)
    return f"""<div class="slider" data-stem="{s}">
<div class="controls">left {picker("l", left)} | right {picker("r", right)}
 <input type="range" min="0" max="100" value="50" aria-label="slider position"></div>
<div class="cmp"><img class="bottom" src="{html.escape(right)}/{s}.png" alt="{html.escape(right)}" width="{width}">
<img class="top" src="{html.escape(left)}/{s}.png" alt="{html.escape(left)}" width="{width}">
<div class="bar"></div><span class="tag l">{html.escape(left)}</span>
<span class="tag r">{html.escape(right)}</span></div>
</div>"""


def write_html(report):
    """Write report/index.html from the report's metrics.csv, summary.md and image folders; return its path."""
    from PIL import Image

    report = Path(report)
    rows = read_metrics(report)
    images, shown = list(dict.fromkeys(r["image"] for r in rows)), list(dict.fromkeys(r["method"] for r in rows))
    columns = [k for k in rows[0] if k not in ("image", "method") and any(r[k] is not None for r in rows)]
    means = [{"method": m, **{k: mean(rows, m, k) for k in columns}} for m in shown]
    summary = (report / "summary.md").read_text().splitlines() if (report / "summary.md").is_file() else []
    settings = [line.replace("`", "") for line in summary if line.startswith("Command: ")]
    settings += summary[summary.index("## Set-up") + 1:] if "## Set-up" in summary else []
    methods = ["lr", *shown, "hr"]  # the folders the pickers offer, in this order; hr: the real image
    left = "bicubic" if "bicubic" in methods else methods[0]
    right = "student" if "student" in methods else methods[-1]
    sections = []
    for stem in images:
        with Image.open(report / "hr" / f"{stem}.png") as im:
            width = im.width
        mine = [r for r in rows if r["image"] == stem]
        sections.append(f"<h2>{html.escape(stem)}</h2>\n{slider(stem, width, methods, left, right)}\n"
                        f"{table(mine, columns, 'method')}")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>vpdsr evaluation</title>
<style>{STYLE}</style></head><body>
<h1>vpdsr evaluation: {len(images)} image{'s' if len(images) != 1 else ''}</h1>
<p>Drag a slider to sweep between the two methods picked above it (the left one is shown left of the
yellow line). <code>hr</code> is the real high-resolution image; <code>lr</code> the input, enlarged
without interpolation. Numbers: means over the images (see summary.md beside this page for what each
metric measures).</p>
{table(means, columns, 'method')}
<pre>{html.escape(chr(10).join(settings))}</pre>
{chr(10).join(sections)}
<script>{SCRIPT}</script>
</body></html>
"""
    (report / "index.html").write_text(page)
    return report / "index.html"


# ---------------------------------------------------------------------------------------------------
# Checking the page in a real browser: --screenshots DIR
# ---------------------------------------------------------------------------------------------------

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")


def screenshot(page, path, hash_="", size=(1100, 900), browser=None):
    """Open `page` (a local file) in headless Chromium with `hash_` in its address and save what it shows.
    The page's script reads the address (e.g. pos=20), sets every slider and redraws, as a drag would."""
    import shutil
    import subprocess

    browser = browser or next((b for b in map(shutil.which, BROWSERS) if b), None)
    if browser is None:
        raise SystemExit(f"error: no Chromium found (looked for {', '.join(BROWSERS)}); on Debian or Ubuntu: "
                         "apt install chromium")
    url = Path(page).resolve().as_uri() + (f"#{hash_}" if hash_ else "")
    cmd = [browser, "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars",
           f"--window-size={size[0]},{size[1]}", "--virtual-time-budget=3000",
           f"--screenshot={Path(path).resolve()}", url]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if done.returncode != 0 or not Path(path).is_file():
        raise SystemExit(f"error: {browser} could not render {url}:\n{done.stderr[-2000:]}")
    return Path(path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip().removeprefix("tools/"))
    ap.add_argument("report", help="a report folder written by evaluate.py (--out)")
    ap.add_argument("--screenshots", metavar="DIR", help="also screenshot the page in headless Chromium with its "
                    "sliders at two positions, into DIR, and check that moving them changed the picture")
    ap.add_argument("--positions", type=int, nargs=2, default=(20, 80), help="slider positions, in percent")
    ap.add_argument("--left", default="bicubic", help="method left of the slider, in the screenshots")
    ap.add_argument("--right", default="student", help="method right of the slider, in the screenshots")
    args = ap.parse_args(argv)
    if not (Path(args.report) / "metrics.csv").is_file():
        raise SystemExit(f"error: {args.report} holds no metrics.csv: not a report folder of evaluate.py")
    page = write_html(args.report)
    print(f"wrote {page} (open it in a browser)")
    if args.screenshots:
        import numpy as np
        from PIL import Image

        out = Path(args.screenshots)
        out.mkdir(parents=True, exist_ok=True)
        shots = [screenshot(page, out / f"slider_{p}.png", f"pos={p}&left={args.left}&right={args.right}")
                 for p in args.positions]
        a, b = (np.asarray(Image.open(s).convert("RGB"), dtype=np.int16) for s in shots)
        changed = (np.abs(a - b).max(-1) > 0).mean()
        print(f"{shots[0]}, {shots[1]}: {100 * changed:.1f}% of the pixels differ between the two slider positions")
        if changed == 0:
            raise SystemExit("error: moving the slider changed nothing on screen")
    return 0


if __name__ == "__main__":
    sys.exit(main())
