# The two commands a reader needs: `make book` and `make test`. Each creates .venv on
# first use and reinstalls when pyproject.toml or the constraints change.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.rmtlr-installed
CONSTRAINTS := requirements/constraints.txt
MATHJAX := _static/mathjax/tex-chtml.js

# Stored chapter outputs are the quick profile's; a reader with a GPU may run
# `RMTLR_PROFILE=full make book`.
export RMTLR_PROFILE ?= quick
export PYTHONHASHSEED := 0

.PHONY: all install book test bench clean

all: test

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[book,test]'
	touch $(STAMP)

install: $(STAMP)

# MathJax from the npm registry, so equations typeset without a CDN.
$(MATHJAX):
	rm -rf _build/mathjax-npm && mkdir -p _build/mathjax-npm _static
	cd _build/mathjax-npm && npm pack --silent mathjax@3.2.2 >/dev/null && tar xzf mathjax-3.2.2.tgz
	rm -rf _static/mathjax && cp -r _build/mathjax-npm/package/es5 _static/mathjax

# Progress bars are for interactive runs; the rendered pages should not carry them.
book: $(STAMP) $(MATHJAX)
	TQDM_DISABLE=1 $(BIN)/jupyter-book build . --builder html -W -n --keep-going
	@echo "Book: _build/html/index.html"

# One BLAS/OpenMP thread per pytest worker, one worker per core: two workers each spinning
# two threads on two cores made the suite 4.5x slower (12 min instead of 2 min 40 s here).
test: $(STAMP)
	TQDM_DISABLE=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 \
		$(BIN)/python -m pytest -n auto --dist loadfile

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -r benchmarks/requirements.txt
	for f in benchmarks/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf _build _static/mathjax .pytest_cache results data_cache
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +
