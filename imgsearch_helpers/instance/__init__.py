"""Instance-level search (notebook 07): the same object or an edited copy, not the same class.

- `descriptors`: pooled feature maps that keep where things are (GeM over regions and scales),
  exported and run like the class-level embedders;
- `postprocess`: whitening learned on the gallery, database-side augmentation, query expansion;
- `diffusion`: ranking by a walk over the gallery's mutual-neighbour graph (helps classes);
- `verify`: re-ranking the top hits by geometric verification of local features (SIFT, RANSAC);
- `edits`: the named, deterministic edits of the copies benchmark;
- `benchmark`: scoring any `<group>/<image>` gallery and query folders;
- `duplicates`: exact and near copies in a folder, as groups.
"""
