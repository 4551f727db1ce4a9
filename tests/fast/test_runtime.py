"""The export cache on a tiny network (seconds): exported once and atomically, each runtime checked
once and its score kept per graph, the first candidate that passes opened, a failing or missing
one passed over (reported when found out or asked for by name). Real ONNX Runtime and OpenVINO."""
import json
import warnings

import numpy as np
import pytest
import torch

from imgsearch_helpers.runtime import MIN_COSINE, Cosine, Export, Graph, open_checked

BATCH = np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32)


@pytest.fixture
def network():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 5, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                               torch.nn.Flatten()).eval()


class Writes:
    """Writes the network's export and counts how often it was asked to."""

    def __init__(self, export, network):
        self.export, self.network, self.count = export, network, 0

    def __call__(self):
        self.count += 1
        self.export.write({"model": Graph(self.network, {"images": BATCH[:2]})}, {"note": "kept"})


def agreement(network, sign: float = 1.0, bars=None) -> Cosine:
    """Cosine against PyTorch's vectors (times `sign`: -1 gives a reference no runtime agrees with)."""
    def reference():
        with torch.no_grad():
            return BATCH, sign * network(torch.from_numpy(BATCH)).numpy()
    return Cosine("tiny vectors", reference, bars=bars or {})


def test_the_export_is_written_once_and_each_runtime_checked_once(tmp_path, network):
    export = Export(tmp_path, "tiny net|v1")
    write = Writes(export, network)
    runtime = open_checked(export, ("onnxruntime",), agreement(network), write, named=True)
    assert export.folder == tmp_path / "models" / "tiny_net_v1" and write.count == 1
    assert sorted(p.name for p in export.folder.iterdir() if p.is_file()) == ["meta.json", "model.onnx"]  # no scratch
    meta = export.meta()
    assert meta["note"] == "kept" and meta["checks"][runtime.name] >= MIN_COSINE
    with torch.no_grad():
        expected = network(torch.from_numpy(BATCH)).numpy()
    np.testing.assert_allclose(runtime.run(BATCH), expected, rtol=1e-4, atol=1e-5)  # any batch size
    stamp = export.onnx.stat().st_mtime_ns
    meta["checks"][runtime.name] = 0.5  # a score already kept is read, not measured again
    export.meta_file.write_text(json.dumps(meta))
    with pytest.warns(UserWarning, match=r"gives tiny vectors unlike PyTorch's \(smallest cosine 0\.50000 < 0\.999\)"):
        assert open_checked(export, ("onnxruntime",), agreement(network), write, named=True) is None
    assert write.count == 1 and export.onnx.stat().st_mtime_ns == stamp


def test_the_first_candidate_that_passes_is_opened_and_a_failure_passed_over_is_kept_not_printed(tmp_path,
                                                                                                     network):
    """Under auto, a runtime that fails its check and is passed over for the next (bf16 on a CPU
    that has it, say) is the choice working: its score is kept in the meta, and the user's terminal
    hears nothing (the first command on a new machine says only what it prepares)."""
    export = Export(tmp_path, "tiny")
    write = Writes(export, network)
    strict = agreement(network, bars={"openvino-f32": 1.01})  # no runtime reaches a cosine above 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        runtime = open_checked(export, ("openvino-f32", "onnxruntime"), strict, write, named=False)
        again = open_checked(export, ("openvino-f32", "onnxruntime"), strict, write, named=False)
    checks = export.meta()["checks"]
    assert runtime.name.startswith("onnxruntime-") and len(checks) == 2
    assert min(checks.values()) < 1.01  # the failure, kept
    assert again.name == runtime.name
    with pytest.warns(UserWarning, match="not used"):  # but said again when asked for by name
        assert open_checked(export, ("openvino-f32",), strict, write, named=True) is None
    unchecked = open_checked(export, ("openvino-f32",), strict, write, named=True, checked=False)
    assert unchecked.name.startswith("openvino-")  # opened anyway: to measure what a failing runtime costs


def test_a_runtime_that_disagrees_is_measured_and_not_used(tmp_path, network):
    export = Export(tmp_path, "tiny")
    with pytest.warns(UserWarning, match=r"smallest cosine -1\.00000"):
        assert open_checked(export, ("onnxruntime",), agreement(network, sign=-1), Writes(export, network),
                            named=False) is None
    assert list(export.meta()["checks"].values()) == [pytest.approx(-1, abs=1e-5)]


def test_a_missing_runtime_is_passed_over_and_named_only_when_asked_for(tmp_path, network):
    export = Export(tmp_path, "tiny")
    write = Writes(export, network)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert open_checked(export, ("tpu-f32",), agreement(network), write, named=False) is None
    with pytest.warns(UserWarning, match="tpu-f32 is not installed"):
        assert open_checked(export, ("tpu-f32",), agreement(network), write, named=True) is None
    assert write.count == 0 and not export.folder.exists()  # nothing to run it on: nothing exported


def test_each_graph_of_an_export_keeps_its_own_checks(tmp_path, network):
    export = Export(tmp_path, "two towers", graphs=("image", "text"))

    def write():
        export.write({name: Graph(network, {name: BATCH[:2]}) for name in export.graphs}, {})

    opened = [open_checked(export, ("openvino-f32",), agreement(network), write, named=False, graph=graph)
              for graph in export.graphs]
    assert sorted(export.meta()["checks"]) == [f"image {opened[0].name}", f"text {opened[1].name}"]


def test_an_architecture_is_sized_without_making_its_weights():
    from imgsearch_helpers.models import architecture

    assert architecture("resnet50") == {"dim": 2048, "parameters": 25_557_032}  # timm's published count
    assert architecture("tf_efficientnet_b7")["dim"] == 2560
