"""Float layers on an NNCF-quantized OpenVINO model, made the way NNCF's accuracy control makes them: quantize
once, then remove the quantizers of the layers' groups and restore their original weights and biases
(`nncf.common.quantization.quantizer_removal`, with the groups from its Ranker).

One `nncf.quantize` then serves every set of float layers the search or the fallback tries. Measured on
EfficientNet-Lite0 (AMD EPYC, 2 vCPU, 128 calibration photos): a revert took 0.05 s, an `nncf.quantize` 6 s
(11 s with full bias correction), and with 12 ops in float the revert and an IgnoredScope measured the same
centered cosine (0.96612) on 100 other photos."""

from __future__ import annotations

from typing import Any

from vopt.runtimes.openvino_names import onnx_layer


class Reverter:
    """A quantized model (quantized with weight compression off, as NNCF's accuracy control does) and its
    float original: `revert(names)` returns a copy with those layers in float, weights compressed.
    `producers`: the ONNX model's {tensor: node} (vopt.runtimes.openvino_names), so an op named after a graph
    output is found by its layer's name."""

    def __init__(self, initial: Any, quantized: Any, producers: dict[str, str] | None = None):
        from nncf.common.factory import build_graph
        from nncf.quantization.algorithms.accuracy_control.openvino_backend import (
            OVAccuracyControlAlgoBackend,
        )
        from nncf.quantization.algorithms.accuracy_control.ranker import Ranker

        self.backend = OVAccuracyControlAlgoBackend()
        self.producers = producers or {}
        self.quantized = quantized
        self.graph = build_graph(quantized)
        self._keep_originals(build_graph(initial), initial)
        # Quantizers that must go together (an input shared by two convs, an Add's two inputs) and the ops
        # that removing them returns to float. The Ranker only groups here: it ranks nothing.
        self.groups = Ranker(1, None, self.backend, None).find_groups_of_quantizers_to_rank(self.graph)

    def _keep_originals(self, initial_graph: Any, initial: Any) -> None:
        """Each quantized op's original bias and its float weights, where the revert looks for them (the
        node's attributes), so bias correction is undone on the layers returned to float.

        The weights are the float ones behind the op's weight FakeQuantize in the quantized model, not the
        initial model's: SmoothQuant (ModelType.TRANSFORMER) divides a shared activation by per-channel scales
        and multiplies every consumer's weights by them, and the scale stays in the graph. Restoring the
        initial weights there undid half of that: ViT-B/16 with 36 linear layers reverted measured a centered
        cosine of 0.154 against fp32 (the all-int8 model: 0.989)."""
        be = self.backend
        for node in initial_graph.get_all_nodes():
            target = self.graph.get_node_by_name(node.node_name)
            if be.is_node_with_bias(node, initial_graph):
                target.attributes["original_bias"] = be.get_bias_value(node, initial_graph, initial)
            if be.is_node_with_weight(node) and be.is_node_with_weight(target):
                for port in be.get_weight_tensor_port_ids(target):
                    target.attributes[f"original_weight.{port}"] = be.get_weight_value(
                        target, self.quantized, port
                    )

    def revert(self, onnx_names: list[str]) -> tuple[Any, list[str]]:
        """(the model with those layers in float, the OpenVINO ops actually returned to float)."""
        from nncf.common.quantization.quantizer_removal import revert_operations_to_floating_point_precision
        from nncf.quantization.advanced_parameters import RestoreMode
        from openvino._offline_transformations import compress_quantize_weights_transformation

        wanted = set(onnx_names)
        chosen = [
            g
            for g in self.groups
            if any(onnx_layer(op.node_name, wanted, self.producers) for op in g.operations)
        ]
        operations = list({op.node_name: op for g in chosen for op in g.operations}.values())
        quantizers = list({q.node_name: q for g in chosen for q in g.quantizers}.values())
        be = self.backend
        model = revert_operations_to_floating_point_precision(
            operations,
            quantizers,
            self.quantized,
            self.graph,
            RestoreMode.ACTIVATIONS_AND_WEIGHTS,
            be.get_op_with_weights_metatypes(),
            be.is_node_with_weight,
            be.get_weight_tensor_port_ids,
        )  # a copy: the quantized model serves the next plan
        compress_quantize_weights_transformation(model)  # int8 weights on disk, as nncf.quantize leaves them
        return model, sorted(op.node_name for op in operations)
