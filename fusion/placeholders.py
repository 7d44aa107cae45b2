"""Media placeholders: one marker per photo or clip in the rendered prompt, expanded to slots.

The chat template renders the conversation with a marker where each medium sits. The marker
is a fresh random string for every prompt, so nothing a person types can ever be or create
a media slot. `expand_placeholders` tokenizes the text between markers and puts exactly as
many slot positions as the medium has feature tokens in place of each marker; the slots are
then known by position (a boolean mask), never by looking for a token id.
"""

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch


class PlaceholderError(ValueError):
    """The prompt and the media do not match (count of markers or of slots)."""


def new_marker() -> str:
    return f"<media-{secrets.token_hex(16)}>"


@dataclass(frozen=True)
class ExpandedPrompt:
    input_ids: torch.Tensor  # [L] token ids; slot positions hold `pad_id`
    slots: torch.Tensor  # [L] bool, True where a media feature token goes
    starts: tuple[int, ...] = ()  # index of each marker's first slot (or where it stood, if 0)


def expand_placeholders(
    prompt: str,
    marker: str,
    slot_counts: Sequence[int],
    tokenize: Callable[[str], list[int]],
    pad_id: int,
) -> ExpandedPrompt:
    """Replace the i-th `marker` in `prompt` with `slot_counts[i]` slots; tokenize the rest.

    Raises PlaceholderError when the number of markers differs from the number of media.
    """
    pieces = prompt.split(marker)
    if len(pieces) - 1 != len(slot_counts):
        raise PlaceholderError(
            f"prompt has {len(pieces) - 1} media markers for {len(slot_counts)} media"
        )
    ids: list[int] = []
    slots: list[bool] = []
    starts: list[int] = []
    for index, piece in enumerate(pieces):
        text_ids = tokenize(piece) if piece else []
        ids += text_ids
        slots += [False] * len(text_ids)
        if index < len(slot_counts):
            starts.append(len(ids))
            ids += [pad_id] * slot_counts[index]
            slots += [True] * slot_counts[index]
    return ExpandedPrompt(
        torch.tensor(ids, dtype=torch.long), torch.tensor(slots, dtype=torch.bool), tuple(starts)
    )
