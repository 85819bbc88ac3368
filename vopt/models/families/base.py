"""What a model family declares. A family module subclasses Family; the registry finds it through its entry
point (group `vopt.families`), and vopt.models.families.lookup picks one for a model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from vopt.core.artifact import Preprocess

if TYPE_CHECKING:
    import numpy as np

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
HALF = [0.5, 0.5, 0.5]


class Family:
    """Defaults for one model family. Everything here can be overridden by the recipe."""

    name: ClassVar[str] = "generic"
    model_types: ClassVar[tuple[str, ...]] = ()  # transformers config.model_type values
    task: ClassVar[str] = "image-classification"
    input_name: ClassVar[str] = "pixel_values"
    # Output names in the order the export wrapper returns them.
    outputs: ClassVar[tuple[str, ...]] = ("logits",)
    image_size: ClassVar[int] = 224
    mean: ClassVar[list[float]] = IMAGENET_MEAN
    std: ClassVar[list[float]] = IMAGENET_STD
    resize: ClassVar[int | None] = None
    channel_order: ClassVar[str] = "RGB"
    # Export parity tolerances (fp32): max abs diff and cosine.
    atol: ClassVar[float] = 1e-4
    min_cosine: ClassVar[float] = 0.9999
    # Output axes besides batch that follow the input's height/width when those are dynamic.
    output_axes: ClassVar[dict[str, dict[int, str]]] = {}
    # Outputs whose order is not stable across tiny numeric differences (top-k).
    unordered_outputs: ClassVar[tuple[str, ...]] = ()
    # Default ops and node-name globs kept in float when quantizing.
    quant_exclude_ops: ClassVar[tuple[str, ...]] = ()
    quant_exclude_nodes: ClassVar[tuple[str, ...]] = ()
    # Of those nodes, the ones a 16-bit quantization keeps precise enough: a target whose float nodes leave
    # the accelerator (QNN's HTP) runs them with 16-bit activations instead of excluding them.
    quant_int16_nodes: ClassVar[tuple[str, ...]] = ()
    is_transformer: ClassVar[bool] = False
    # NNCF's preset when the recipe names none: None follows is_transformer (mixed for transformers, else
    # performance). "mixed" quantizes activations asymmetrically, which a SiLU network needs (YOLO).
    nncf_preset: ClassVar[str | None] = None
    # transformers class to build instead of the task's Auto class (e.g. CLIP's vision tower with projection).
    model_class: ClassVar[str | None] = None
    # Module-name globs the pruner must leave alone (heads whose output size is the task's contract).
    prune_ignore: ClassVar[tuple[str, ...]] = ()
    # Small config overrides for tests (random weights). Nested dicts update nested configs.
    tiny_config: ClassVar[dict[str, Any]] = {}
    # How a detector turns class logits into scores (vopt.validate.detection): "softmax-no-object" (a
    # no-object class last) or "sigmoid" (focal-loss heads); None for models that are not detectors.
    scoring: ClassVar[str | None] = None
    # Which library builds `tiny_config` (and the model): transformers' CONFIG_MAPPING for `model_types`, or
    # the family's own source (e.g. "diffusers", from `tiny_model()`).
    config_library: ClassVar[str] = "transformers"

    def __init__(self) -> None:
        self.applied: list[str] = []  # export fixes prepare() applied, for the load report

    def preprocess(self, size: list[int] | None = None) -> Preprocess:
        size = size or [self.image_size, self.image_size]
        # Keep the family's resize/crop ratio (e.g. 256/224) at whatever input size the recipe uses.
        resize = round(min(size) * self.resize / self.image_size) if self.resize else None
        return Preprocess(
            size=size, mean=self.mean, std=self.std, resize=resize, channel_order=self.channel_order
        )

    def adapt_config(self, config: Any) -> Any:
        """The config the model class takes, from the one a checkpoint ships (e.g. CLIP's vision half)."""
        return config

    def prepare(self, model: Any) -> Any:
        """Export fixes applied after loading (e.g. swap an op a backend cannot take)."""
        return model

    def example_inputs(self, model: Any, input_shape: list[int]) -> dict[str, Any] | None:
        """Named example inputs (numpy arrays, in the order the module takes them) for a model that takes
        several inputs or no image (a UNet's sample, timestep and text states); None for the one image input
        of `input_shape` that most families take. Load writes the artifact's inputs from them, export traces
        and checks parity with them, and the PyTorch runner feeds the module by these names."""
        return None

    def dynamic_axes(self, dynamic_batch: bool) -> dict[str, dict[int, str]] | None:
        """The dynamic axes of each input and output of a model with `example_inputs` (e.g. a VAE decoder's
        height and width, for tiling); None: the image input's axes from the recipe."""
        return None

    def run_components(
        self, calls: dict[str, ComponentCall], images: np.ndarray, settings: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]]:
        """How a model of components runs as a whole on `images`: the final outputs, and each component's
        (inputs, outputs) on the way. By default a chain in component order (`run_chain`); a family whose
        components work otherwise (a diffusion pipeline's denoising loop) overrides it. `settings`: the
        recipe's `validate.pipeline` (`pipeline`) and the load step's metadata (`model`)."""
        return run_chain(calls, images)

    def tiny_model(self) -> dict[str, Any] | None:
        """The `model:` section of the family's tiny test model, when its own source builds it (not
        transformers from `tiny_config`); None for the hf families."""
        return None

    def check_recipe(self, recipe: Any) -> None:
        """Plan-time checks only the family can make (a file's head against `export.nms`): raise a
        RecipeError whose message starts with the key path."""

    def check_nms(self, meta: dict[str, Any]) -> None:
        """`export.nms` on this model: a RecipeError saying why its head takes no NMS (or needs none)."""
        from vopt.errors import RecipeError

        raise RecipeError(
            f"export.nms: family '{self.name}' ({self.task}) has no head that NMS applies to"
            + ("; DETR-style detectors take export.postprocess" if self.task == "object-detection" else "")
        )

    def detections(self, outputs: dict[str, np.ndarray], score_threshold: float) -> list[Any] | None:
        """Per image, the detections in this family's raw outputs as (boxes [N, 4] x1 y1 x2 y2, labels [N],
        scores [N]), for box agreement where the graph has no post-processing; None when the family does not
        say."""
        return None

    def output_tensors(self, output: Any) -> tuple[Any, ...]:
        """Pick the named outputs from a model's forward() result."""
        if isinstance(output, (tuple, list)) and len(output) >= len(self.outputs):
            return tuple(output[: len(self.outputs)])  # plain modules: outputs by position
        return tuple(_pick(output, name) for name in self.outputs)


class ComponentCall(Protocol):
    """One component of a model of components, ready to run (on PyTorch, or on the artifact's runtime): named
    inputs in, named outputs out, whole batches."""

    inputs: list[str]
    outputs: list[str]

    def __call__(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


def run_chain(
    calls: dict[str, ComponentCall], images: np.ndarray
) -> tuple[dict[str, np.ndarray], dict[str, tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]]:
    """Components that run in order, each one's first output the next one's first input (an encoder and its
    decoder; a network and its post-processing). Returns the last component's outputs, and each component's
    (inputs, outputs) on the way, so a check can feed a component exactly what it saw here."""
    seen: dict[str, tuple[dict[str, np.ndarray], dict[str, np.ndarray]]] = {}
    x, out = images, {}
    for name, call in calls.items():
        feeds = {call.inputs[0]: x}
        out = call(feeds)
        seen[name] = (feeds, out)
        x = out[call.outputs[0]]
    return out, seen


class DetectionFamily(Family):
    """DETR-style detectors: class logits and normalized boxes per query. Queries pass through top-k or a
    set matching, so a 1e-4 difference can reorder them: parity compares matched detections."""

    task: ClassVar[str] = "object-detection"
    outputs: ClassVar[tuple[str, ...]] = ("logits", "pred_boxes")
    is_transformer: ClassVar[bool] = True
    atol: ClassVar[float] = 5e-4
    unordered_outputs: ClassVar[tuple[str, ...]] = ("logits", "pred_boxes")
    quant_exclude_ops: ClassVar[tuple[str, ...]] = ("Softmax", "LayerNormalization")
    scoring: ClassVar[str | None] = "softmax-no-object"  # DETR and YOLOS; focal-loss heads say "sigmoid"


def _pick(output: Any, name: str) -> Any:
    if (isinstance(output, dict) or hasattr(output, "keys")) and name in output:
        return output[name]
    if hasattr(output, name):
        return getattr(output, name)
    if isinstance(output, (tuple, list)):
        return output[0]
    return output
