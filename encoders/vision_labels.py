"""What an ImageNet classifier over the vision tokens says a photo shows, as words.

A tower trained as a classifier (the embedded EfficientNet-Lite0) comes with the head that
maps its mean token to ImageNet-1k logits. Its top label, said as a short phrase ("a tabby
cat"), is the one text-aligned thing such a tower knows; the adapter can hand it to the LM
as that phrase's own token embeddings, next to the projected patch tokens (fusion/model.py).

Letters: B images, N tokens, C width, K classes.
"""

import torch


class ImageLabeller:
    def __init__(self, head: torch.nn.Linear, names: list[str]):
        if head.out_features != len(names):
            raise ValueError(f"{head.out_features} classes but {len(names)} names")
        self.head = head.eval().requires_grad_(False)
        self.names = names

    @torch.inference_mode()
    def probabilities(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [B, N, C] -> each class's probability [B, K]."""
        return self.head(tokens.float().mean(dim=1).cpu()).softmax(-1)  # head stays on CPU

    @torch.inference_mode()
    def top(self, tokens: torch.Tensor, k: int = 5) -> torch.Tensor:
        """tokens [B, N, C] -> the k best class ids [B, k], best first."""
        return self.head(tokens.float().mean(dim=1).cpu()).topk(k).indices  # head stays on CPU

    def phrase(self, tokens: torch.Tensor) -> str:
        """tokens [1, N, C] -> the top label with its article: "a tabby cat"."""
        return with_article(self.names[int(self.top(tokens, 1)[0, 0])])


def with_article(name: str) -> str:
    return f"{'an' if name[0].lower() in 'aeiou' else 'a'} {name}"


def imagenet_names() -> list[str]:
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

    return list(IMAGENET_CLASSNAMES)
