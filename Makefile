# The commands a reader needs: `make book`, `make test`, `make lab`, `make check-book`. Each
# creates .venv on first use and reinstalls when pyproject.toml or the constraints change.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.rmtlr-installed
CONSTRAINTS := requirements/constraints.txt
# MathJax is copied into _vendor/, which the book serves as an extra path (_config.yml says
# why not _static/).
MATHJAX := _vendor/_static/mathjax/startup.js
MATHJAX_VERSION := 3.2.2

# Stored chapter outputs are the quick profile's; a reader with a GPU may run
# `RMTLR_PROFILE=full make book`.
export RMTLR_PROFILE ?= quick
export PYTHONHASHSEED := 0

.PHONY: all install book test check-book lab bench clean

all: test

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[book,test]'
	touch $(STAMP)

install: $(STAMP)

# MathJax from the npm registry, so equations typeset without a CDN. A copy left in _static/
# by an older Makefile would be loaded file by file on every page again: remove it.
$(MATHJAX):
	rm -rf _build/mathjax-npm _static/mathjax && mkdir -p _build/mathjax-npm _vendor/_static
	cd _build/mathjax-npm && npm pack --silent mathjax@$(MATHJAX_VERSION) >/dev/null \
		&& tar xzf mathjax-$(MATHJAX_VERSION).tgz
	rm -rf _vendor/_static/mathjax && cp -r _build/mathjax-npm/package/es5 _vendor/_static/mathjax

# Progress bars are for interactive runs; the rendered pages should not carry them.
book: $(STAMP) $(MATHJAX)
	TQDM_DISABLE=1 $(BIN)/jupyter-book build . --builder html -W -n --keep-going
	@echo "Book: _build/html/index.html"

# One BLAS/OpenMP thread per pytest worker, one worker per core: two workers each spinning
# two threads on two cores made the suite 4.5x slower (12 min instead of 2 min 40 s here).
test: $(STAMP)
	TQDM_DISABLE=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 \
		$(BIN)/python -m pytest -n auto --dist loadfile

# Every page of the built book in headless Chromium, offline, at 1400 and 400 px: console
# errors, failed or network requests, untypeset math, broken images, clipped equations and
# page weight (tests/check_book.py). Needs only the standard library and a Chromium, which
# the script finds, installs as root on Debian/Ubuntu, or says how to get. Screenshots of
# every page: _build/screenshots/.
check-book: book
	$(BIN)/python tests/check_book.py _build/html --screenshots _build/screenshots

# The chapters in JupyterLab, run by this project's .venv: its kernel is registered inside
# the venv as "python3" (the name the chapters ask for), and Jupyter prefers the venv's
# kernels to a user-wide one of the same name. (As root, in a container, JupyterLab must
# be told that this is intended.)
lab: $(STAMP)
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 \
		--display-name "Python 3 (rmtlr .venv)" >/dev/null
	JUPYTER_PREFER_ENV_PATH=1 $(BIN)/jupyter lab book/ $(if $(filter 0,$(shell id -u)),--allow-root)

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -r benchmarks/requirements.txt
	for f in benchmarks/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf _build _vendor _static/mathjax .pytest_cache results data_cache
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +
