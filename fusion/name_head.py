"""The adapter's name head: what people call the thing in a photo, from the vision tokens.

The vision tower's own classifier knows ImageNet's 1,000 labels ("tabby", "espresso",
"missile"), chosen for photos. The name head is a linear layer over the same mean token,
trained on drawings with the names people wrote for them (fusion/training/name_data.py), so
the LM can be told "a penguin" where ImageNet says "king penguin" or, for a drawing,
"comic book". The classifier's own evidence still counts: each ImageNet class votes for the
names among its words ("tabby cat" for "cat"), and a name's likelihood is the mean of the
head's probability and those votes (`class_votes`). Trained on drawings alone, the head
would call a photo of a cat "a flower"; with the votes it says "a cat". When the best name
is not likely enough (below `sure_above`), the phrase says so ("perhaps a penguin"), and the
LM is told the doubt instead of a confident wrong name.

Letters: B images, N tokens, C width, K names.
"""

import torch
from torch import nn

from encoders.vision_labels import with_article

UNSURE_WORD = "perhaps"  # before an unsure name: "perhaps a penguin"


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
    def likelihoods(self, tokens: torch.Tensor, votes: torch.Tensor | None = None) -> torch.Tensor:
        """tokens [B, N, C], votes [B, K] or None -> each name's likelihood [B, K]."""
        probabilities = self(tokens.to(self.linear.weight.device)).softmax(-1)  # B, K
        return probabilities if votes is None else (probabilities + votes.to(probabilities)) / 2

    def best(self, tokens: torch.Tensor, votes: torch.Tensor | None = None) -> tuple[str, float]:
        """tokens [1, N, C] (votes [1, K]) -> (the likeliest name, its likelihood)."""
        likelihoods = self.likelihoods(tokens, votes)[0]  # K
        top = int(likelihoods.argmax())
        return self.names[top], float(likelihoods[top])

    def phrase(self, tokens: torch.Tensor, votes: torch.Tensor | None = None) -> str:
        """tokens [1, N, C] -> "a penguin", or "perhaps a penguin" when unsure."""
        name, probability = self.best(tokens, votes)
        said = with_article(name)
        return said if probability >= self.sure_above else f"{UNSURE_WORD} {said}"


def class_vote_matrix(class_names: list[str], names: list[str]) -> torch.Tensor:
    """How ImageNet classes vote for the head's names, [1000, K]: each class gives its
    probability to the names among its words ("tabby cat" -> "cat"; "tea cup" -> "tea" and
    "cup"), shared evenly; a class with no such word votes for nothing. Votes for a batch of
    class probabilities [B, 1000] are `probabilities @ matrix` [B, K]."""
    index = {name: k for k, name in enumerate(names)}
    matrix = torch.zeros(len(class_names), len(names))
    for c, class_name in enumerate(class_names):
        words = [w for w in class_name.lower().replace("-", " ").split() if w in index]
        for word in words:
            matrix[c, index[word]] = 1.0 / len(words)
    return matrix
