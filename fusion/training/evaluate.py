"""Evaluation on held-out data: questions, voices, images and signs never used in training.

Speech, for each set and each reader (what the LM is given for a clip, speech_reading.py):
- answered as typed: share of clips whose greedy answer (first 16 tokens) equals the greedy
  answer to the same words typed;
- reading word error: word error rate of the words the LM read, against what was said
  (both through Whisper's English text normaliser, so "2" and "two" are one word).

Images:
- human-named (named_images.py): share of drawings whose answer to "What is in this
  picture?" says a name people give the thing; "label words alone" is the same test on the
  vision tower's own top ImageNet label;
- template images (vision_data.py): share whose answer names one of the tower's own top-5
  ImageNet classes (the labels it was trained on).

Signs (sign_data.py): share of signs whose answer holds every word of the sign, each asked one
of four phrasings in turn ("What does this sign say?", "Can you read this for me?", ...).
"""

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from encoders.vision_labels import imagenet_names as class_names
from fusion.conversation import Message, Photo, Speech
from fusion.generate import GenerationOptions
from fusion.model import Chunk, LunettesModel
from fusion.speech_reading import greedy_reading
from fusion.training.named_images import NamedImage, names_it
from fusion.training.tasks import COLOUR_QUESTION, EVAL_WHAT_QUESTION, REPEAT_PROMPT, photo_media

COMPARED_TOKENS = 16
GREEDY = GenerationOptions(max_new_tokens=COMPARED_TOKENS)
REPEAT = GenerationOptions(max_new_tokens=48)

# A reader: (model, speech with features and transcript) -> the LM tokens the clip is read as.
Reader = Callable[[LunettesModel, Speech], list[int]]


def whisper_reader(model: LunettesModel, speech: Speech) -> list[int]:
    """Whisper's transcript alone, as the LM's tokens for the same text typed."""
    return model.tokenizer.encode(speech.transcript.strip(), add_special_tokens=False)


def adapter_reader(model: LunettesModel, speech: Speech) -> list[int]:
    """The adapter's CTC head alone, greedy."""
    vocabulary = model.lm.get_input_embeddings().weight
    return greedy_reading(model.adapter.audio_log_probs(speech.features, vocabulary))


def shipped_reader(model: LunettesModel, speech: Speech) -> list[int]:
    """What the app gives the LM (LunettesModel.read_speech with its own settings)."""
    return model.read_speech(speech, model.lm.get_input_embeddings().weight)


ADAPTER_ALONE = "adapter's CTC reading alone"
READERS: dict[str, Reader] = {
    "Whisper's transcript alone": whisper_reader,
    ADAPTER_ALONE: adapter_reader,
    "shipped reading": shipped_reader,
}


@dataclass
class SpeechScores:
    answered_as_typed: float  # 0..1, higher is better
    reading_wer: float  # 0..1+, lower is better
    clips: int


@dataclass
class SpokenClip:
    text: str  # what was said
    features: torch.Tensor  # [1, T, C] Whisper encoder frames
    transcript: str  # Whisper's, decoded as the app decodes
    language: str
    heard: tuple[str, ...] = ()  # all of Whisper's readings, its transcript first
    heard_scores: tuple[float, ...] = ()  # the beam's log-probability of each


def clip_speech(clip: SpokenClip) -> Speech:
    """The clip as the app holds a spoken question once it is transcribed."""
    return Speech(
        np.zeros(0, np.float32),
        clip.features,
        clip.transcript,
        clip.language,
        heard=clip.heard,
        heard_scores=clip.heard_scores,
    )


def answer_text(model: LunettesModel, messages: list[Message], options: GenerationOptions) -> str:
    return "".join(e.text for e in model.stream(messages, options) if isinstance(e, Chunk)).strip()


def transcribed(model: LunettesModel, texts: list[str], features: list[torch.Tensor]) -> list:
    """Clips [1, T, C] with their transcripts (once per clip, shared by every reader)."""
    clips = []
    for text, frames in zip(texts, tqdm(features, desc="transcribe")):
        heard = model.transcriber(frames)
        clips.append(
            SpokenClip(text, frames, heard.text, heard.language, heard.alternatives, heard.scores)
        )
    return clips


def evaluate_speech(
    model: LunettesModel, clips: list[SpokenClip], reader: Reader, typed: dict[str, str]
) -> SpeechScores:
    """typed: text -> the greedy answer to it typed (filled as needed, shared across calls)."""
    from whisper.normalizers import EnglishTextNormalizer

    normalise = EnglishTextNormalizer()
    agree, errors, words = 0, 0, 0
    for clip in tqdm(clips, desc="eval speech"):
        if clip.text not in typed:
            typed[clip.text] = answer_text(model, [Message("user", clip.text)], GREEDY)
        speech = clip_speech(clip)
        speech.reading = reader(model, speech)
        spoken = answer_text(model, [Message("user", speech=speech)], GREEDY)
        agree += spoken == typed[clip.text]
        reference = normalise(clip.text).split()
        errors += edit_distance(
            reference, normalise(model.tokenizer.decode(speech.reading)).split()
        )
        words += len(reference)
    return SpeechScores(agree / max(1, len(clips)), errors / max(1, words), len(clips))


def repeat_wer(model: LunettesModel, clips: list[SpokenClip]) -> float:
    """Word error of "Repeat exactly what I said." with each clip, read as the app reads it."""
    errors, words = 0, 0
    for clip in tqdm(clips, desc="eval repeat"):
        speech = clip_speech(clip)
        said = answer_text(model, [Message("user", REPEAT_PROMPT, speech=speech)], REPEAT)
        reference = normalise_words(clip.text)
        errors += edit_distance(reference, normalise_words(said))
        words += len(reference)
    return errors / max(1, words)


def named_image_scores(model: LunettesModel, images: list[NamedImage]) -> tuple[float, float]:
    """(share named by the answer, share named by the tower's own top label alone)."""
    answered, labelled = 0, 0
    for item in tqdm(images, desc="eval named images"):
        photo = Photo(item.image)
        answer = answer_text(model, [Message("user", EVAL_WHAT_QUESTION, photos=[photo])], GREEDY)
        answered += names_it(answer, item.names)
        if model.vision.labeller is not None:
            labelled += names_it(model.vision.labeller.phrase(photo.features), item.names)
    count = max(1, len(images))
    return answered / count, labelled / count


def colour_scores(model: LunettesModel, images: list[NamedImage]) -> float:
    """Share of drawings whose answer to "What colour is it?" says the colour of their name."""
    said = 0
    for item in tqdm(images, desc="eval colours"):
        asked = [Message("user", COLOUR_QUESTION, photos=[Photo(item.image)])]
        said += names_it(answer_text(model, asked, GREEDY), item.names)
    return said / max(1, len(images))


def template_image_naming(model: LunettesModel, vision: list) -> float:
    """Share of template images whose answer names one of the tower's own top-5 classes."""
    names = class_names()
    named = 0
    for example in tqdm(vision, desc="eval template images"):
        answer = answer_text(
            model, [Message("user", EVAL_WHAT_QUESTION, photos=[photo_media(example)])], GREEDY
        )
        named += any(mentions(answer, names[c]) for c in example.top5)
    return named / max(1, len(vision))


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
