# Two commands on a fresh machine:  `make demo` (trains the counting quick preset and writes its report)
# and `make test` (the test suite). Both create .venv and install everything they need first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STORE  ?= limitlab-store
TORCH_CPU := torch==2.13.0

.PHONY: install browser demo test lint bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@# CPU-only machine: take the CPU wheel first, so the torch range below pulls nothing bigger.
	@if ! command -v nvidia-smi >/dev/null 2>&1; then $(BIN)/python -m pip install -q "$(TORCH_CPU)"; fi
	@# ray, probe, lens and curves extras too, so the Ray-cluster, Hugging Face, TransformerLens and live-curve tests
	@# run instead of skipping
	$(BIN)/python -m pip install -q -e ".[dev,ray,probe,lens,curves]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/limitlab run counting --preset quick --store $(STORE)
	$(BIN)/limitlab report counting --store $(STORE) --out reports/counting

# tests/test_report_browser.py opens every study's report page in Debian's chromium. Installed here when missing, as
# root with apt-get only (about a minute), and never failing the build: without chromium that test skips and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium (apt-get) for the report browser test"; log=$$(mktemp); \
	    { DEBIAN_FRONTEND=noninteractive apt-get update -q; \
	      DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; } >"$$log" 2>&1 \
	      || { tail -n 5 "$$log"; echo "note: chromium not installed; the report browser test will skip"; }; \
	    rm -f "$$log"; \
	  else echo "note: no chromium and not root with apt-get; the report browser test will skip"; fi; }

test: install browser
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check src tests benchmarks

bench: install
	$(BIN)/limitlab bench

clean:
	rm -rf $(VENV) reports $(STORE)
