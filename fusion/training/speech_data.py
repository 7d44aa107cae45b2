"""The speech training and evaluation sets: synthesized questions -> Whisper features, cached.

Each example holds the Whisper encoder frames of one spoken question [T, C] (float16), the
question's text (the "repeat what I said" target) and the teacher's answer ids.
"""

import random
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from fusion.model import LunettesModel
from fusion.training.questions import split_questions
from fusion.training.teacher import teacher_answers
from fusion.training.voices import HELD_OUT_VOICES, TRAIN_VOICES, Voice, random_delivery, synthesize


@dataclass
class SpeechExample:
    features: torch.Tensor  # [T, C] float16 Whisper encoder frames
    text: str  # what was said
    answer_ids: list[int]  # the LM's greedy answer to the typed text
    voice: str


def build_speech_set(
    model: LunettesModel,
    split: str,
    path: Path,
    clips_per_question: int,
    seed: int = 0,
    limit: int | None = None,
) -> list[SpeechExample]:
    """Load the cached set at `path`, or synthesize, encode and cache it.

    split "train": training questions, training voices; "eval": held-out questions, held-out voices.
    """
    if path.is_file():
        return [SpeechExample(**item) for item in torch.load(path, weights_only=False)]
    train, held_out = split_questions(seed)
    questions = (train if split == "train" else held_out)[:limit]
    voices: list[Voice] = TRAIN_VOICES if split == "train" else HELD_OUT_VOICES
    answers = teacher_answers(model, questions)
    rng = random.Random(seed)
    examples = []
    for index, (question, answer) in enumerate(
        tqdm(list(zip(questions, answers)), desc=f"speech {split}")
    ):
        for voice in rng.sample(voices, clips_per_question):
            delivery = (
                random_delivery(rng) if split == "train" else random_delivery(random.Random(index))
            )
            waveform = synthesize(question, voice, delivery, seed=rng.randrange(2**31))
            features = model.audio.encode(waveform)[0].to(torch.float16)  # T, C
            examples.append(SpeechExample(features, question, answer, voice.name))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save([vars(e) for e in examples], path)
    return examples
