"""The adapter's name head: what people call the thing in a photo, from the vision tokens.

The vision tower's own classifier knows ImageNet's 1,000 labels ("tabby", "espresso",
"missile"), chosen for photos. The name head is a linear layer over the same mean token,
trained on drawings with the names people wrote for them (fusion/training/name_data.py), so
the LM can be told "a penguin" where ImageNet says "king penguin" or, for a drawing,
"comic book". When its best name is not likely enough (below `sure_above`), the phrase says
so ("perhaps a penguin"), and the LM is told the doubt instead of a confident wrong name.

Letters: B images, N tokens, C width, K names.
"""

import torch
from torch import nn

from encoders.vision_labels import with_article


class NameHead(nn.Module):
    def __init__(self, width: int, names: list[str], sure_above: float):
        super().__init__()
        self.linear = nn.Linear(width, len(names))
        self.names = list(names)
        self.sure_above = sure_above

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [B, N, C] -> logits [B, K]."""
        return self.linear(tokens.float().mean(dim=1))

    @torch.inference_mode()
    def best(self, tokens: torch.Tensor) -> tuple[str, float]:
        """tokens [1, N, C] -> (the likeliest name, its probability)."""
        probabilities = self(tokens.to(self.linear.weight.device)).softmax(-1)[0]  # K
        top = int(probabilities.argmax())
        return self.names[top], float(probabilities[top])

    def phrase(self, tokens: torch.Tensor) -> str:
        """tokens [1, N, C] -> "a penguin", or "perhaps a penguin" when unsure."""
        name, probability = self.best(tokens)
        said = with_article(name)
        return said if probability >= self.sure_above else f"perhaps {said}"
