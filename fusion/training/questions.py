"""Questions a person asks their glasses, made from templates and word lists, offline.

The corpus is deterministic. A question's split (train or held out) is decided by a hash of
its text, so the held-out questions never appear in training whatever the corpus size.
"""

import hashlib
import random

HELD_OUT_PERCENT = 10

THINGS = [
    "an apple",
    "a banana",
    "a bicycle",
    "a bridge",
    "a camera",
    "a candle",
    "a castle",
    "a cat",
    "a chair",
    "a clock",
    "a cloud",
    "a coffee cup",
    "a computer",
    "a cow",
    "a desert",
    "a dog",
    "a dolphin",
    "a door key",
    "an elephant",
    "a forest",
    "a frog",
    "a guitar",
    "a hammer",
    "a helicopter",
    "a horse",
    "a kettle",
    "a lamp",
    "a lemon",
    "a lighthouse",
    "a map",
    "a microwave",
    "a mountain",
    "a mushroom",
    "a newspaper",
    "an orange",
    "an owl",
    "a piano",
    "a pillow",
    "a pineapple",
    "a pizza",
    "a rainbow",
    "a river",
    "a robot",
    "a rocket",
    "a sandwich",
    "a shark",
    "a sheep",
    "a snake",
    "a spider",
    "a strawberry",
    "a sunflower",
    "a telescope",
    "a tiger",
    "a tomato",
    "a train",
    "a tree",
    "a truck",
    "an umbrella",
    "a violin",
    "a volcano",
    "a watch",
    "a whale",
    "a window",
    "a zebra",
    "a bottle of water",
    "a pair of glasses",
    "a passport",
    "a toothbrush",
    "a wallet",
    "a backpack",
]
TOPICS = [
    "the moon",
    "the sun",
    "the ocean",
    "photosynthesis",
    "gravity",
    "electricity",
    "the weather",
    "the internet",
    "music",
    "history",
    "the human heart",
    "sleep",
    "coffee",
    "tea",
    "bread",
    "football",
    "chess",
    "the Eiffel Tower",
    "Paris",
    "London",
    "Japan",
    "Italy",
    "the stars",
    "rain",
    "snow",
    "volcanoes",
    "dinosaurs",
    "bees",
    "vitamins",
    "exercise",
    "recycling",
    "the alphabet",
    "numbers",
    "money",
    "time zones",
    "the seasons",
    "clouds",
    "earthquakes",
]
ACTIONS = [
    "boil an egg",
    "make tea",
    "tie a tie",
    "plant a tree",
    "bake bread",
    "learn to swim",
    "fall asleep faster",
    "save money",
    "cook rice",
    "clean a window",
    "fix a flat tyre",
    "write a letter",
    "read a map",
    "make a sandwich",
    "start running",
    "water a plant",
    "brush my teeth",
    "cross the street safely",
    "find my way home",
    "charge my phone",
    "learn a new language",
    "make pancakes",
    "wash my hands",
    "pack a suitcase",
    "stay calm",
]
PLACES = ["the kitchen", "the park", "the beach", "a museum", "a library", "the station", "a shop"]

TEMPLATES = [
    ("What is {thing}?", "thing"),
    ("Tell me about {thing}.", "thing"),
    ("What colour is {thing}?", "thing"),
    ("How big is {thing}?", "thing"),
    ("Where can I find {thing}?", "thing"),
    ("Is {thing} dangerous?", "thing"),
    ("What is {thing} used for?", "thing"),
    ("Can you describe {thing}?", "thing"),
    ("Give me a fun fact about {thing}.", "thing"),
    ("How much does {thing} weigh?", "thing"),
    ("Explain {topic} in simple words.", "topic"),
    ("What do you know about {topic}?", "topic"),
    ("Why is {topic} important?", "topic"),
    ("Tell me something about {topic}.", "topic"),
    ("What is the history of {topic}?", "topic"),
    ("How does {topic} work?", "topic"),
    ("How do I {action}?", "action"),
    ("What is the best way to {action}?", "action"),
    ("Can you help me {action}?", "action"),
    ("Give me three tips to {action}.", "action"),
    ("Is it hard to {action}?", "action"),
    ("How long does it take to {action}?", "action"),
    ("What can I do in {place}?", "place"),
    ("What should I bring to {place}?", "place"),
    ("Is {place} open on Sundays?", "place"),
    ("How do I behave in {place}?", "place"),
]
STANDALONE = [
    "What time is it?",
    "What day is it today?",
    "How are you?",
    "Who are you?",
    "What can you do?",
    "Tell me a joke.",
    "Tell me a short story.",
    "Say something nice.",
    "What is the capital of France?",
    "What is the capital of Japan?",
    "How many days are in a year?",
    "What is two plus two?",
    "What is the largest planet?",
    "Why is the sky blue?",
    "What should I eat for dinner?",
    "Recommend a good book.",
    "How do I say hello in Spanish?",
    "What is the tallest mountain in the world?",
    "How far away is the moon?",
    "What is the speed of light?",
    "Give me a word that rhymes with cat.",
    "Spell the word apple.",
]

SLOTS = {"thing": THINGS, "topic": TOPICS, "action": ACTIONS, "place": PLACES}


def all_questions() -> list[str]:
    """Every question the templates make, plus the standalone ones, in a fixed order."""
    questions = list(STANDALONE)
    for template, slot in TEMPLATES:
        questions += [template.format(**{slot: value}) for value in SLOTS[slot]]
    return sorted(set(questions))


def is_held_out(question: str) -> bool:
    return int(hashlib.sha256(question.encode()).hexdigest(), 16) % 100 < HELD_OUT_PERCENT


def split_questions(seed: int = 0) -> tuple[list[str], list[str]]:
    """(train, held_out), each shuffled with `seed`."""
    questions = all_questions()
    train = [q for q in questions if not is_held_out(q)]
    held_out = [q for q in questions if is_held_out(q)]
    rng = random.Random(seed)
    rng.shuffle(train)
    rng.shuffle(held_out)
    return train, held_out
