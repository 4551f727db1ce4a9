# make run  : execute the notebooks in order (embedded Milvus Lite) and print the results summary
# make test : unit tests + every notebook on the tiny slice (nbval)
# make lab  : JupyterLab on the notebooks
# Each target first creates .venv from requirements.txt if it is missing or out of date.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Tests use their own cache and results so they never touch (or lock) the ones `make run` uses.
TEST_ENV := IMGSEARCH_SLICE=tiny IMGSEARCH_CACHE_DIR=$(CURDIR)/data/test-cache IMGSEARCH_RESULTS_DIR=$(CURDIR)/data/test-runs

.PHONY: venv run test unit lab clean-venv

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements.txt
	# yolov5 without its dependencies (they are pinned in requirements.txt; see the comment there),
	# then the headless OpenCV again so that it owns cv2/.
	$(BIN)/pip install --quiet --no-deps --force-reinstall yolov5==7.0.14 opencv-python-headless==5.0.0.93
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m imgsearch_helpers.runner

test: $(STAMP)
	$(TEST_ENV) $(BIN)/python -m pytest tests --nbval-lax notebooks

unit: $(STAMP)
	$(TEST_ENV) $(BIN)/python -m pytest tests

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks

clean-venv:
	rm -rf $(VENV)
