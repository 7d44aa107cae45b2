"""Evaluation on held-out data: questions, voices and images never used in training.

- speech answer agreement: share of spoken questions whose greedy answer (first 16 tokens)
  equals the greedy answer to the same question typed;
- repeat WER: word error rate of "Repeat exactly what I said." against the spoken words;
- vision naming: share of images whose answer to "What is in this picture?" names one of the
  frozen backbone's top-5 ImageNet classes.
"""

import re
from dataclasses import dataclass

from tqdm import tqdm

from encoders.vision_labels import imagenet_names as class_names
from fusion.conversation import Message
from fusion.generate import GenerationOptions
from fusion.model import Chunk, LunettesModel
from fusion.training.tasks import EVAL_WHAT_QUESTION, REPEAT_PROMPT, photo_media, speech_media

COMPARED_TOKENS = 16
GREEDY = GenerationOptions(max_new_tokens=COMPARED_TOKENS)
REPEAT = GenerationOptions(max_new_tokens=48)


@dataclass
class Scores:
    answer_agreement: float  # 0..1, higher is better
    repeat_wer: float  # 0..1+, lower is better
    vision_naming: float  # 0..1, higher is better
    speech_clips: int
    images: int


def answer_text(model: LunettesModel, messages: list[Message], options: GenerationOptions) -> str:
    return "".join(e.text for e in model.stream(messages, options) if isinstance(e, Chunk)).strip()


def evaluate(model: LunettesModel, speech: list, vision: list) -> Scores:
    typed: dict[str, str] = {}
    agree, errors, words = 0, 0, 0
    for example in tqdm(speech, desc="eval speech"):
        if example.text not in typed:
            typed[example.text] = answer_text(model, [Message("user", example.text)], GREEDY)
        spoken = answer_text(model, [Message("user", speech=speech_media(example))], GREEDY)
        agree += spoken == typed[example.text]
        repeated = answer_text(
            model, [Message("user", REPEAT_PROMPT, speech=speech_media(example))], REPEAT
        )
        reference = normalise_words(example.text)
        errors += edit_distance(reference, normalise_words(repeated))
        words += len(reference)
    names = class_names()
    named = 0
    for example in tqdm(vision, desc="eval vision"):
        answer = answer_text(
            model, [Message("user", EVAL_WHAT_QUESTION, photos=[photo_media(example)])], GREEDY
        )
        named += any(mentions(answer, names[c]) for c in example.top5)
    return Scores(
        answer_agreement=agree / max(1, len(speech)),
        repeat_wer=errors / max(1, words),
        vision_naming=named / max(1, len(vision)),
        speech_clips=len(speech),
        images=len(vision),
    )


def mentions(answer: str, name: str) -> bool:
    return re.search(rf"\b{re.escape(name.lower())}\b", answer.lower()) is not None


def normalise_words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]", " ", text.lower()).split()


def edit_distance(reference: list[str], hypothesis: list[str]) -> int:
    """Word-level Levenshtein distance (substitutions + insertions + deletions)."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref_word in enumerate(reference, 1):
        current = [i]
        for j, hyp_word in enumerate(hypothesis, 1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word))
            )
        previous = current
    return previous[-1]
