// Registers one index's data (Feder's module, the index bytes, thumbnails) on the page, once.
// feder.py replaces the DATA placeholder below with a JSON object.
(() => {
  const registry = (window.imgsearchFeder = window.imgsearchFeder || {data: {}, modules: {}, waiting: {}});
  const payload = __DATA__;
  if (!(payload.script.key in registry.modules)) {
    const url = payload.script.code
      ? URL.createObjectURL(new Blob([payload.script.code], {type: "text/javascript"}))
      : payload.script.url;
    registry.modules[payload.script.key] = import(url);
  }
  const bytes = Uint8Array.from(atob(payload.index), (c) => c.charCodeAt(0));
  const entry = {
    indexUrl: URL.createObjectURL(new Blob([bytes], {type: "application/octet-stream"})),
    source: payload.source, media: payload.media, module: registry.modules[payload.script.key],
  };
  registry.data[payload.key] = entry;
  (registry.waiting[payload.key] || []).forEach((resolve) => resolve(entry));
  delete registry.waiting[payload.key];
  document.getElementById(payload.element).dataset.status = "loaded";
})();
