"""Training the adapter's name head (fusion/name_head.py) on drawings named by people.

Softmax regression over the name vocabulary on the cached mean tokens (name_data.py): a
drawing's target spreads evenly over its name words. The classes are balanced: a view weighs
1 / (the number of training views of its first name), so that 1,400 clip-art stars do not
teach the head to call everything a star. The number of epochs and the doubt threshold are
chosen on the held-out drawings (split by path), never on the evaluation images (emoji,
named_images.py):
- epochs: the best held-out top-1 averaged over names (the name is one of the drawing's own
  names; each first name counts once, as each thing does for a person asking);
- sure_above: the confidence from which the held-out names are right at least SURE_PRECISION
  of the time, bin by bin; below it the phrase says "perhaps".

Letters: M views, C width, K names.
"""

from dataclasses import dataclass

import torch

from fusion.name_head import NameHead
from fusion.training.name_data import NameSet

SURE_PRECISION = 0.5  # right more often than not


@dataclass(frozen=True)
class NameTraining:
    max_epochs: int = 60
    batch_size: int = 256
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    balanced: bool = True  # weigh views by 1 / their first name's count
    seed: int = 0


def train_name_head(
    data: NameSet, config: NameTraining = NameTraining(), votes=None
) -> tuple[NameHead, dict]:
    """-> the head at its best held-out epoch, and its held-out figures. votes: mean tokens
    [M, C] -> the classifier's votes for the names [M, K] (name_head.class_vote_matrix), which
    join the head at inference; the doubt threshold is chosen with them."""
    torch.manual_seed(config.seed)
    features = data.features.float()  # M, C
    targets = torch.zeros(len(data.names), len(data.vocabulary))  # M, K
    for row, ids in enumerate(data.names):
        targets[row, list(ids)] = 1.0 / len(ids)
    held = torch.tensor(data.held_out, dtype=torch.bool)
    if held.all() or not held.any():  # a tiny (smoke) set: choose on what there is
        held = torch.zeros_like(held)
        test_x, test_y = features, targets
    else:
        test_x, test_y = features[held], targets[held]
    train_x, train_y = features[~held], targets[~held]
    first = torch.tensor([ids[0] for ids in data.names])  # M: each view's first name
    weights = _balanced_weights(first[~held], len(data.vocabulary))  # M_train
    if not config.balanced:
        weights = torch.ones_like(weights)
    test_first = first[held] if held.any() else first
    mean = train_x.mean(0)
    # one row has no spread; both are folded into the head below
    std = train_x.std(0).nan_to_num(1.0).clamp_min(1e-6)
    head = NameHead(features.shape[1], data.vocabulary, sure_above=0.0)
    optimizer = torch.optim.AdamW(
        head.linear.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    best = (-1.0, None, 0)
    for epoch in range(config.max_epochs):
        order = torch.randperm(train_x.shape[0])
        for start in range(0, len(order), config.batch_size):
            rows = order[start : start + config.batch_size]
            logits = head.linear((train_x[rows] - mean) / std)  # B, K
            per_view = -(train_y[rows] * logits.log_softmax(-1)).sum(-1)  # B
            loss = (weights[rows] * per_view).sum() / weights[rows].sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            right = _top1_right(head.linear((test_x - mean) / std), test_y)
            accuracy = _mean_over_names(right, test_first)
        if accuracy > best[0]:
            best = (float(accuracy), {k: v.clone() for k, v in head.state_dict().items()}, epoch)
    head.load_state_dict(best[1])
    _fold_normalisation(head, mean, std)
    with torch.no_grad():
        tokens = test_x[:, None, :]  # M, 1, C: a mean token is its own mean
        probabilities = head.likelihoods(tokens, votes(test_x) if votes else None)
    right = _top1_right(probabilities, test_y)
    head.sure_above = _sure_threshold(probabilities.max(-1).values, right)
    figures = {
        "held_out_top1_by_name": best[0],
        "held_out_top1_by_name_with_votes": _mean_over_names(right, test_first),
        "held_out_top1": float(right.float().mean()),
        "epochs": best[2] + 1,
        "sure_above": head.sure_above,
        "held_out_views": int(held.sum()),
    }
    return head.eval().requires_grad_(False), figures


def _balanced_weights(first: torch.Tensor, names: int) -> torch.Tensor:
    """[M] first names -> [M] weights, 1 / the count of each view's first name."""
    counts = torch.bincount(first, minlength=names).float()  # K
    return 1.0 / counts[first]


def _mean_over_names(right: torch.Tensor, first: torch.Tensor) -> float:
    """The share right for each first name, averaged over the names present."""
    names = first.unique()
    return float(torch.stack([right[first == n].float().mean() for n in names]).mean())


def _top1_right(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """[M] whether each row's best name is one of its own names."""
    return targets.gather(1, scores.argmax(-1, keepdim=True))[:, 0] > 0


def _fold_normalisation(head: NameHead, mean: torch.Tensor, std: torch.Tensor) -> None:
    """W((x - mean) / std) + b == (W / std) x + (b - (W / std) mean): the head takes raw tokens."""
    with torch.no_grad():
        weight = head.linear.weight / std  # K, C
        head.linear.bias -= weight @ mean
        head.linear.weight.copy_(weight)


def _sure_threshold(confidence: torch.Tensor, right: torch.Tensor, bins: int = 10) -> float:
    """The confidence from which held-out names are right more often than not: the held-out
    predictions in `bins` equal bins by confidence; the lower edge of the lowest bin from
    which every bin is right at least SURE_PRECISION of the time (1.0: no such bin)."""
    order = confidence.argsort()  # ascending
    chunks = torch.tensor_split(order, bins)
    threshold = 1.0
    for chunk in reversed(chunks):
        if len(chunk) == 0 or right[chunk].float().mean() < SURE_PRECISION:
            break
        threshold = float(confidence[chunk].min())
    return round(threshold, 4)


def with_name_head(adapter, head: NameHead):
    """The adapter with `head` as its name head (its config names the head's names)."""
    from dataclasses import replace

    from fusion.adapter import Adapter

    config = replace(
        adapter.config, image_names=list(head.names), image_names_sure_above=head.sure_above
    )
    combined = Adapter(config, adapter.info)
    state = {k: v for k, v in adapter.state_dict().items() if not k.startswith("image_names.")}
    state |= {f"image_names.{k}": v for k, v in head.state_dict().items()}
    combined.load_state_dict(state)
    return combined.eval().requires_grad_(False)
