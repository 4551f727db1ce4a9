"""Descriptors for instance search: the CNN's last feature maps pooled by generalized mean (GeM)
over regions and scales, so a crop or a shifted view still matches part of the descriptor.

The class-level embedding averages the 7 x 7 map of a center crop: an edit that moves the object
or cuts the frame changes it a lot. Here the whole image (no center crop) is resized to a square,
the maps at two scales are GeM-pooled over the whole map and over a 3 x 3 grid of overlapping
regions, each region's vector is L2-normalized and the regions are summed (as R-MAC sums regional
max-pools; Tolias et al., ICLR 2016; GeM: Radenović et al., TPAMI 2018). The pooling is part of
the exported network, so it runs on the same checked runtimes as every other model.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from ..config import Settings, get_settings
from ..runtime.backends import check_backend
from ..runtime.export import Export, Loaded
from .embedder import Embedder
from .exports import TorchModel, open_exported
from .registry import DEFAULT_MODEL, identify


@dataclass(frozen=True)
class Pooling:
    # 320 pixels at one scale (a 10 x 10 map) found the hard copies as well as 384 and 288 pixels
    # together, at a third of the cost (50 copies per hard edit, Lite0: top-1 0.96-1.0 both ways)
    size: int = 320  # side of the square the whole image is resized to
    scales: tuple[float, ...] = (1.0,)  # the input also resized by each further factor, e.g. (1.0, 0.75)
    grids: tuple[int, ...] = (1, 3)  # regions per side: the whole map, then 3 x 3 overlapping windows
    p: float = 3.0  # GeM's exponent: 1 is the mean, large values approach the max

    @property
    def tag(self) -> str:
        scales = "+".join(f"{s:g}" for s in self.scales)
        return f"rgem-p{self.p:g}-g{'+'.join(map(str, self.grids))}-s{scales}@{self.size}"


class PooledModel:
    """A TorchModel's backbone with regional GeM pooling on top, shaped like a TorchModel for its
    export (module, preprocess, weights, reference, sizes, classifier)."""

    def __init__(self, base: TorchModel, pooling: Pooling):
        self.name, self.weights, self.pooling = base.name, base.weights, pooling
        self.key = f"{base.key}|{pooling.tag}"
        self.module = pooled_module(base.model, pooling)
        self.preprocess = replace(base.preprocess, crop=pooling.size, resize=pooling.size, whole=True)
        self.dim = int(base.model.num_features)

    reference = TorchModel.reference  # PyTorch on `self.module`, the check's reference
    embedder = TorchModel.embedder  # the PyTorch fallback: the same Embedder, on `self.module`

    def sizes(self) -> dict:
        return {"dim": self.dim, "classes": 0, "parameters": sum(p.numel() for p in self.module.parameters())}

    def classifier(self):
        return None


def pooled_module(model, pooling: Pooling):
    import torch
    import torch.nn.functional as F

    class RegionalGem(torch.nn.Module):
        def __init__(self, backbone):
            super().__init__()
            self.backbone = backbone

        def forward(self, batch):
            total = 0
            for scale in pooling.scales:
                scaled = batch if scale == 1 else F.interpolate(batch, scale_factor=scale, mode="bilinear",
                                                                align_corners=False, antialias=False)
                powered = self.backbone.forward_features(scaled).clamp(min=1e-6).pow(pooling.p)
                for grid in pooling.grids:
                    total = total + _region_sum(powered, grid, pooling.p)
            return F.normalize(total, dim=-1)

    return RegionalGem(model).eval()


def _region_sum(powered, grid: int, p: float):
    """GeM of each of grid x grid overlapping windows (40% overlap, as R-MAC's), each L2-normalized, summed."""
    import torch.nn.functional as F

    side = int(powered.shape[-1])  # a constant in the export: the input size is fixed
    window = side if grid == 1 else -(-2 * side // (grid + 1))
    stride = max(1, (side - window) // max(1, grid - 1))
    regions = F.avg_pool2d(powered, window, stride).pow(1.0 / p)  # (N, C, grid, grid)
    return F.normalize(regions.flatten(2), dim=1).sum(2)


def build_instance_embedder(name: str = DEFAULT_MODEL, pooling: Pooling = Pooling(), settings: Settings | None = None,
                            backend: str | None = None, checked: bool = True) -> Embedder:
    """An `Embedder` whose vectors are unit-length regional GeM descriptors (cosine search)."""
    settings = settings or get_settings()
    backend = backend or settings.backend
    check_backend(backend)
    loaded = Loaded(lambda: PooledModel(TorchModel.load(name, True, settings.weights_dir), pooling))
    if backend == "torch":
        return loaded().embedder()
    known = identify(name, True, settings.weights_dir)
    export = Export(settings.cache_dir, f"{known[0]}|{pooling.tag}" if known else loaded().key)
    return open_exported(export, loaded, name, backend, settings, checked) or loaded().embedder()
