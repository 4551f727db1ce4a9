// Registers one index's data (Feder's module, the index bytes, thumbnails) on the page, once.
// feder/views.py replaces the DATA placeholder below with a JSON object: the data itself, or
// (in JupyterLab) the path of a file holding it, fetched from the Jupyter server that serves it.
(() => {
  const registry = (window.imgsearchFeder = window.imgsearchFeder || {data: {}, modules: {}, waiting: {}});
  const payload = __DATA__;
  const element = document.getElementById(payload.element);
  // The Jupyter server serves files under its root at <baseUrl>files/<path relative to the root>.
  const servedUrl = (file, home) => {
    const tag = document.getElementById("jupyter-config-data");
    const config = tag ? JSON.parse(tag.textContent) : {};
    const root = (config.serverRoot || "").replace(/^~/, home).replace(/\/+$/, "");
    if (!config.baseUrl || !file.startsWith(root + "/")) {
      throw new Error("the data file " + file + " is not under this Jupyter server's folder " + root);
    }
    return config.baseUrl + "files/" + file.slice(root.length + 1).split("/").map(encodeURIComponent).join("/");
  };
  const load = payload.file
    ? fetch(servedUrl(payload.file, payload.home)).then((answer) => {
      if (!answer.ok) throw new Error("the data file " + payload.file + " could not be fetched (" + answer.status + "): run the cell again");
      return answer.json();
    })
    : Promise.resolve(payload);
  load.then((data) => {
    if (!(data.script.key in registry.modules)) {
      const url = data.script.code
        ? URL.createObjectURL(new Blob([data.script.code], {type: "text/javascript"}))
        : data.script.url;
      registry.modules[data.script.key] = import(url);
    }
    const bytes = Uint8Array.from(atob(data.index), (c) => c.charCodeAt(0));
    const entry = {
      indexUrl: URL.createObjectURL(new Blob([bytes], {type: "application/octet-stream"})),
      source: data.source, media: data.media, module: registry.modules[data.script.key],
    };
    registry.data[payload.key] = entry;
    (registry.waiting[payload.key] || []).forEach((resolve) => resolve(entry));
    delete registry.waiting[payload.key];
    element.dataset.status = "loaded";
  }).catch((error) => {
    element.dataset.status = "error";
    element.textContent += " - " + error.message;
    console.error(error);
  });
})();
