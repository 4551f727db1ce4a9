// Draws one Feder view from data registered by feder_data.js (possibly by a later output).
// feder.py replaces the SPEC placeholder below with a JSON object.
(() => {
  const spec = __SPEC__;
  const root = document.getElementById(spec.element);
  const registry = (window.imgsearchFeder = window.imgsearchFeder || {data: {}, modules: {}, waiting: {}});
  const ready = registry.data[spec.key] ? Promise.resolve(registry.data[spec.key]) : new Promise((resolve, reject) => {
    (registry.waiting[spec.key] = registry.waiting[spec.key] || []).push(resolve);
    const missing = "this view's index data is not on the page: run the cell that shows the FederIndex";
    setTimeout(() => reject(new Error(missing)), spec.waitMs);
  });
  // Resolves with condition()'s first truthy value, polled every 100 ms; rejects after spec.waitMs.
  const waitFor = (condition, what) => new Promise((resolve, reject) => {
    const started = Date.now();
    const poll = () => {
      const value = condition();
      if (value) resolve(value);
      else if (Date.now() - started > spec.waitMs) reject(new Error("Feder did not " + what));
      else setTimeout(poll, 100);
    };
    poll();
  });
  const option = (label) => [...root.querySelectorAll("*")]
    .find((e) => e.childElementCount === 0 && e.textContent.trim() === label);
  // Feder shows a spinner (#feder-loading) until its layout is computed and drawing starts.
  const drawing = () => root.querySelector("canvas") && !root.querySelector("#feder-loading");
  ready.then(async (entry) => {
    const { Feder } = await entry.module;
    // Feder's fine-search panel calls mediaCallback even for an index without images
    // A page that only takes screenshots (snapshots.py) wants each animation's last frame: there
    // every step of Feder 0.2.4's animations lasts 1/50 of its default (an HNSW search with ef=64
    // plays for about two minutes at the defaults). Not shorter: the last frame overshoots the
    // end by up to a frame, which moves the HNSW view's time slider visibly on a short animation.
    const steps = window.imgsearchFederSnapshot ? {animateExitTime: 30, animateEnterTime: 20, fineSearchNodeTransTime: 24,
      searchInterLevelTime: 6, searchIntraLevelTime: 2} : {};
    const viewParams = Object.assign({}, spec.viewParams, steps, {mediaCallback: (id) => entry.media[id] || null});
    if (Object.keys(entry.media).length) viewParams.mediaType = "img";
    const feder = new Feder({
      filePath: entry.indexUrl, source: entry.source, domSelector: "#" + spec.element, viewParams,
    });
    if (spec.action === "overview") {
      feder.overview();
    } else {
      feder.setSearchParams(spec.params);
      if (spec.action === "searchById") feder.searchById(spec.id);
      else feder.search(spec.vector, spec.targetMedia);
    }
    await waitFor(drawing, "finish its layout");
    if (spec.stage) (await waitFor(() => option(spec.stage), "draw the option " + spec.stage)).click();
    root.dataset.status = "drawn";
  }).catch((error) => {
    root.dataset.status = "error";
    root.textContent = "Feder view failed: " + error.message;
    console.error(error);
  });
})();
