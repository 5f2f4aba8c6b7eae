# `make demo` and `make test` set everything up on first use: a virtual environment in .venv,
# (re)installed whenever requirements.txt changes.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo demo-long test clean

$(VENV)/installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -r requirements.txt
	touch $@

# The whole method on the demo photos, on a CPU in a few minutes: see the degradations, train the tiny
# teacher and student, upscale the held-out photos' LR versions, evaluate bicubic / teacher / student.
demo: $(VENV)/installed
	$(PY) degrade.py --demo -o results/degrade --n 4
	$(PY) train.py --data demo --preset tiny --out runs/demo --overwrite
	$(PY) sample.py results/degrade/chelsea_lr0.png results/degrade/rocket_lr0.png --ckpt runs/demo/student.pt -o results/demo
	$(PY) evaluate.py --ckpt runs/demo/student.pt --data demo --out results/demo/report
	@echo "Degradations: results/degrade/*_preview.png (HR, then each LR version)"
	@echo "Training:     runs/demo/ (samples/teacher_*.png: LR | teacher | HR, samples/student_*.png: LR | teacher | student | HR; loss_*.png; log.jsonl)"
	@echo "Upscaled:     results/demo/*_x4.png"
	@echo "Evaluation:   results/demo/report/index.html (open it in a browser: sliders per image), summary.md, metrics.csv, compare.png"

# The longer CPU recipe: the same networks, 10 000 teacher steps and 1 000 student steps (at commit cdee5d0,
# whose results docs/RESULTS.md reports: 33 + 11 minutes, each on one core of two while the other core ran
# other jobs).
demo-long: $(VENV)/installed
	$(PY) train.py --data demo --preset tiny --out runs/demo-long --overwrite --teacher-iters 10000 --student-iters 1000
	$(PY) evaluate.py --ckpt runs/demo-long/student.pt --data demo --out results/demo-long/report

test: $(VENV)/installed
	$(PY) -m pytest

clean:
	rm -rf results runs/demo runs/demo-long .pytest_cache
