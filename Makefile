# make run  : execute the notebooks in order (embedded Milvus Lite) and print the results summary
# make test : every test tier: fast (tests/fast), then integration: the real data and weights, a Milvus server,
#             Chromium, the notebooks (nbval, tiny slice), exit paths under load; prints how long it took
# make unit : the fast tier alone (tests/fast: synthetic images, tiny random networks, no tutorial data, no
#             weights, no Milvus server), for a loop of seconds; prints how long it took
# make lab  : JupyterLab on the notebooks
# make app  : the showcase web app on http://127.0.0.1:7860 (builds the index first if it is missing)
# make feder-js : a local copy of Feder's script (npm pack), so that Feder's views need no internet
# Each target first creates .venv from requirements.txt if it is missing or out of date.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Tests use their own cache and results so they never touch (or lock) the ones `make run` uses.
TEST_ENV := IMGSEARCH_SLICE=tiny IMGSEARCH_CACHE_DIR=$(CURDIR)/data/test-cache IMGSEARCH_RESULTS_DIR=$(CURDIR)/data/test-runs
# The fast tier sees empty data and weights folders: a test there that reaches for the tutorial data
# or a pretrained network fails instead of quietly using them.
FAST_ENV := $(TEST_ENV) IMGSEARCH_DATA_DIR=$(CURDIR)/data/fast-empty/data IMGSEARCH_WEIGHTS_DIR=$(CURDIR)/data/fast-empty/weights HF_HUB_OFFLINE=1

FEDER_JS := data/feder/feder-0.2.4.js

.PHONY: venv run test unit lab app feder-js chromium clean-venv

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements.txt
	# yolov5 without its dependencies (they are pinned in requirements.txt; see the comment there),
	# then the headless OpenCV again so that it owns cv2/.
	$(BIN)/pip install --quiet --no-deps --force-reinstall yolov5==7.0.14 opencv-python-headless==5.0.0.93
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

feder-js: $(FEDER_JS)

$(FEDER_JS): | $(STAMP)
	$(BIN)/python -c "from imgsearch_helpers.feder.assets import fetch_feder_js; print(fetch_feder_js())"

# run and lab work without npm too: Feder's views then load its script from the CDN.
run: $(STAMP)
	@$(MAKE) --no-print-directory feder-js || echo "no local copy of Feder's script: its views will load it from the CDN"
	$(BIN)/python -m imgsearch_helpers.devtools.runner

# The browser tests drive Debian's Chromium; as root on Debian it is installed when missing.
chromium:
	@test -n "$$IMGSEARCH_CHROMIUM" || command -v chromium >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  { echo "the browser tests need Chromium: apt-get install chromium, or set IMGSEARCH_CHROMIUM"; exit 1; }

test: $(STAMP) $(FEDER_JS) chromium
	@start=$$(date +%s); $(TEST_ENV) $(BIN)/python -m pytest tests --nbval-lax notebooks --durations=25; \
	  status=$$?; echo "make test: $$(( $$(date +%s) - start )) s"; exit $$status

unit: $(STAMP)
	@mkdir -p data/fast-empty/data data/fast-empty/weights
	@start=$$(date +%s); $(FAST_ENV) $(BIN)/python -m pytest tests/fast -m "not server"; \
	  status=$$?; echo "make unit: $$(( $$(date +%s) - start )) s"; exit $$status

lab: $(STAMP)
	@$(MAKE) --no-print-directory feder-js || echo "no local copy of Feder's script: its views will load it from the CDN"
	$(BIN)/jupyter lab notebooks $$([ "$$(id -u)" = 0 ] && echo --allow-root)  # JupyterLab refuses root without it

app: $(STAMP)
	$(BIN)/python -m imgsearch_helpers.serve.app $(APP_ARGS)

clean-venv:
	rm -rf $(VENV)
