# `make demo`, `make weights` and `make test` set everything up on first use: a virtual environment in .venv,
# (re)installed whenever requirements.txt changes.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo weights test clean

$(VENV)/installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -r requirements.txt
	touch $@

# The method in a few minutes on a CPU, from the shipped teacher (weights/teacher.pt): see the `light`
# degradation, distil a one-step student from the teacher on the demo photos, upscale the held-out photos'
# LR versions, evaluate bicubic / teacher / student and write the web page.
demo: $(VENV)/installed
	$(PY) metrics.py --fetch-weights
	$(PY) tools/degradations.py --demo -o results/degrade --n 4 --degradation light
	$(PY) train.py --data demo --size tiny --degradation light --stage student --teacher weights/teacher.pt --learning-rate 2e-4 --w-adv 0.005 --out runs/demo --overwrite
	$(PY) sample.py results/degrade/chelsea_lr0.png results/degrade/rocket_lr0.png --ckpt runs/demo/student.pt -o results/demo
	$(PY) evaluate.py --ckpt runs/demo/student.pt --teacher weights/teacher.pt --data demo --out results/demo/report
	$(PY) tools/webpage.py results/demo/report
	@echo "Degradations: results/degrade/*_preview.png (HR, then each LR version)"
	@echo "Training:     runs/demo/ (log.jsonl; python tools/preview.py runs/demo, python tools/plot_losses.py runs/demo)"
	@echo "Upscaled:     results/demo/*_x4.png"
	@echo "Evaluation:   results/demo/report/index.html (open it in a browser: sliders per image), summary.md, metrics.csv, compare.png"

# The shipped pair, from scratch: fetch the photo corpus; train the teacher, then distil the student from it,
# on the corpus's training photos and the demo's; export both as 16-bit files with their SHA-256 manifest into
# weights/; evaluate them on the held-out photos. weights/README.md (the model card) gives the measured times:
# about an hour on an idle 2-core CPU.
weights: $(VENV)/installed
	$(PY) metrics.py --fetch-weights
	$(PY) tools/fetch.py photos
	$(PY) train.py --data photos+demo --size tiny --degradation light --stage teacher --teacher-iters 36000 --ckpt-every 2000 --log-every 500 --out runs/ship --overwrite
	$(PY) train.py --data photos+demo --size tiny --degradation light --stage student --teacher runs/ship/teacher.pt --learning-rate 2e-4 --w-adv 0.005 --clip random --w-ess 0.1 --student-iters 1000 --ckpt-every 500 --log-every 100 --out runs/ship-student --overwrite
	$(PY) tools/export.py --teacher runs/ship/teacher.pt --student runs/ship-student/student.pt --to weights
	$(PY) evaluate.py --data photos+demo --out results/weights/light

test: $(VENV)/installed
	$(PY) metrics.py --fetch-weights
	$(PY) -m pytest

clean:
	rm -rf results runs/demo .pytest_cache
