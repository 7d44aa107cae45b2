"""open_clip image towers as patch-token encoders: PIL images -> tokens [B, N, D].

Letters: B images, C channels, H/W pixels, h/w feature grid, N = h*w tokens, D width.

Two kinds of tower are read for their tokens rather than their pooled vector:
- open_clip's `VisionTransformer` (ViT CLIP models): its `output_tokens` patch tokens;
- open_clip's `TimmModel` (timm trunks hosted as image towers): the trunk's
  `forward_features` map [B, D, h, w], flattened to [B, h*w, D].

Preprocessing always comes from the model itself (open_clip's transforms for CLIP towers,
timm's data config for a timm trunk), so the two cannot drift apart.
"""

from collections.abc import Callable, Sequence

import torch
from PIL import Image

from encoders.fingerprint import fingerprint
from encoders.vision_labels import ImageLabeller

Preprocess = Callable[[Image.Image], torch.Tensor]  # PIL -> [C, H, W]


class VisionEncoder(torch.nn.Module):
    """A frozen image tower that returns patch tokens, with its own preprocessing."""

    def __init__(
        self,
        tower: torch.nn.Module,
        preprocess: Preprocess,
        name: str,
        image_size: int,
        labeller: ImageLabeller | None = None,
    ):
        super().__init__()
        # channels-last: torch's CPU convolutions (depthwise ones above all) run ~2x faster
        self.tower = tower.eval().requires_grad_(False).to(memory_format=torch.channels_last)
        self.preprocess = preprocess
        self.name = name
        self.labeller = labeller  # the tower's own ImageNet head, when it has one
        with torch.inference_mode():
            probe = self(torch.zeros(1, 3, image_size, image_size))  # 1, N, D
        self.num_tokens, self.dim = probe.shape[1], probe.shape[2]
        self.identity = {"name": name, "fingerprint": fingerprint(tower)}

    @torch.inference_mode()
    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels [B, C, H, W] (already preprocessed) -> tokens [B, N, D]."""
        return patch_tokens(self.tower, pixels.contiguous(memory_format=torch.channels_last))

    def encode(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """RGB images -> tokens [B, N, D], N == self.num_tokens for every image."""
        if not images:
            raise ValueError("encode() needs at least one image")
        pixels = torch.stack([self.preprocess(image) for image in images])  # B, C, H, W
        return self(pixels)


def patch_tokens(tower: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """Run an open_clip image tower and return its patch tokens [B, N, D]."""
    from open_clip.timm_model import TimmModel
    from open_clip.transformer import VisionTransformer

    if isinstance(tower, TimmModel):
        features = tower.trunk.forward_features(pixels)
        if features.ndim == 4:  # B, D, h, w -> B, h*w, D
            return features.flatten(2).transpose(1, 2)
        prefix = getattr(tower.trunk, "num_prefix_tokens", 0)  # B, N, D from a timm ViT
        return features[:, prefix:]
    if isinstance(tower, VisionTransformer):
        tower.output_tokens = True
        _, tokens = tower(pixels)  # B, N, D (class token removed by open_clip's pooling)
        return tokens
    raise TypeError(
        f"{type(tower).__name__} image towers give no patch tokens here; "
        "use a ViT CLIP model or a timm trunk"
    )
