"""Tiny random-weight stand-ins for every model Lunettes composes, built in-process, offline.

Nothing here downloads: the tokenizer is trained on a few sentences, the language model,
Whisper and the image towers are randomly initialised from fixed seeds. Each builder is a
plain function (fixtures in conftest.py cache them per session); each builds in well under a
second on two CPU cores, once transformers is imported.
"""

import functools
import struct
import zlib

import numpy as np
import torch
from PIL import Image

from encoders.audio import AudioEncoder
from encoders.audio_io import SAMPLE_RATE
from encoders.vision import VisionEncoder
from fusion.adapter import Adapter, AdapterConfig
from fusion.model import LunettesModel

IM_START, IM_END = "<|im_start|>", "<|im_end|>"
CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SENTENCES = [
    "You are a helpful assistant.",
    "What is in this photo? A cat sits on the mat.",
    "Hello there, how are you today? I am fine, thank you.",
    "Describe what you hear and what you see.",
    "Un café, s'il vous plaît: déjà vu, naïve façade.",
]
LM_WIDTH = 32
CLIP_IMAGE_SIZE, CLIP_PATCH = 32, 8  # 4 x 4 = 16 patch tokens
WHISPER_DIMS = {
    "n_mels": 80, "n_audio_ctx": 1500, "n_audio_state": 32, "n_audio_head": 2, "n_audio_layer": 2,
    "n_vocab": 51865, "n_text_ctx": 448, "n_text_state": 32, "n_text_head": 2, "n_text_layer": 2,
}  # fmt: skip  # n_vocab 51865: multilingual, whose tokenizer openai-whisper ships


def tiny_tokenizer():
    """A byte-level BPE (~340 tokens) trained on SENTENCES, with ChatML specials and template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=[IM_START, IM_END],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte: any text encodes
        show_progress=False,
    )
    backend.train_from_iterator(SENTENCES * 3, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=IM_END, chat_template=CHATML)


def tiny_lm(vocab_size: int, eos_id: int, seed: int = 0):
    """A 2-layer Llama, hidden 32, random weights; greedy decoding never picks `eos_id`.

    The eos row of the output projection is zeroed, so its logit is exactly 0 while some of
    the ~340 others are positive: greedy answers run to max_new_tokens, and a test that wants
    an early stop says so (stop strings, or the model's stop_ids).
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=LM_WIDTH,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        eos_token_id=eos_id,
        bos_token_id=None,
        pad_token_id=None,
    )
    torch.manual_seed(seed)
    lm = LlamaForCausalLM(config).eval().requires_grad_(False)
    lm.lm_head.weight[eos_id] = 0.0
    return lm


def tiny_whisper(seed: int = 0):
    """openai-whisper's Whisper at width 32, 2 + 2 layers, multilingual vocabulary, random weights."""
    from whisper.model import ModelDimensions, Whisper

    torch.manual_seed(seed)
    model = Whisper(ModelDimensions(**WHISPER_DIMS))
    torch.nn.init.normal_(model.decoder.positional_embedding, std=0.02)  # torch.empty in Whisper
    return model.eval().requires_grad_(False)


def tiny_audio_encoder(seed: int = 0) -> AudioEncoder:
    return AudioEncoder(tiny_whisper(seed), name=f"tiny-whisper-{seed}")


def tiny_clip_encoder(seed: int = 0) -> VisionEncoder:
    """open_clip's VisionTransformer at 32 px, patch 8 (16 tokens of width 32)."""
    from open_clip.transformer import VisionTransformer
    from torchvision import transforms

    torch.manual_seed(seed)
    tower = VisionTransformer(
        image_size=CLIP_IMAGE_SIZE, patch_size=CLIP_PATCH, width=32, layers=2, heads=2, mlp_ratio=2,
        output_dim=16,
    )  # fmt: skip
    preprocess = transforms.Compose(
        [
            transforms.Resize((CLIP_IMAGE_SIZE, CLIP_IMAGE_SIZE)),
            transforms.ToTensor(),
            transforms.Normalize((0.48, 0.46, 0.41), (0.27, 0.26, 0.28)),
        ]
    )
    return VisionEncoder(tower, preprocess, f"tiny-clip-vit-{seed}", image_size=CLIP_IMAGE_SIZE)


def tiny_timm_encoder(model_name: str = "test_efficientnet", seed: int = 0) -> VisionEncoder:
    """A timm test trunk (~0.1 M parameters) hosted in open_clip's TimmModel, with timm's transform."""
    from encoders.vision_models import timm_preprocess, timm_tower

    torch.manual_seed(seed)
    tower = timm_tower(model_name)
    image_size = tower.trunk.pretrained_cfg["input_size"][-1]
    return VisionEncoder(
        tower, timm_preprocess(tower), f"tiny-{model_name}-{seed}", image_size=image_size
    )


def identities(vision: VisionEncoder, audio: AudioEncoder, lm) -> dict[str, dict[str, str]]:
    from encoders.fingerprint import fingerprint

    return {
        "vision": vision.identity,
        "audio": audio.identity,
        "lm": {"name": "tiny-llama", "fingerprint": fingerprint(lm)},
    }


def adapter_config(vision: VisionEncoder, audio: AudioEncoder) -> AdapterConfig:
    return AdapterConfig(
        image_dim=vision.dim,
        audio_dim=audio.dim,
        lm_dim=LM_WIDTH,
        hidden_dim=48,
        audio_context_layers=1,
        audio_compress=True,
    )


def tiny_lunettes(tokenizer, lm, vision: VisionEncoder, audio: AudioEncoder) -> LunettesModel:
    adapter = Adapter.untrained(
        adapter_config(vision, audio), identities(vision, audio, lm), seed=0
    )
    return LunettesModel(lm, tokenizer, vision, audio, adapter, lm_name="tiny-llama")


def tiny_model() -> LunettesModel:
    """The whole tiny model, for a process of its own (the fixtures share theirs)."""
    tokenizer = tiny_tokenizer()
    return tiny_lunettes(
        tokenizer,
        tiny_lm(len(tokenizer), tokenizer.eos_token_id),
        tiny_clip_encoder(),
        tiny_audio_encoder(),
    )


def tone(
    seconds: float, frequency: float = 440.0, rate: int = SAMPLE_RATE, amplitude: float = 0.5
) -> np.ndarray:
    """A sine wave [S] float32, S = round(seconds * rate)."""
    t = np.arange(round(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


@functools.cache
def _said(text: str) -> np.ndarray:
    from piper.config import SynthesisConfig

    from encoders import piper_voice
    from encoders.audio_io import resample

    # VITS draws its sound and its pauses at random (a comma's pause: 320-416 ms in 4 draws
    # of test_web_vad's question); without that noise a clip is the same in every run
    steady = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    pieces = piper_voice.voice().synthesize(text, steady)
    samples = np.concatenate([np.asarray(p.audio_float_array, np.float32) for p in pieces])
    return resample(samples, piper_voice.sample_rate(), SAMPLE_RATE)


def said(text: str) -> np.ndarray:
    """`text` spoken by the neural voice (Piper's joe), [S] float32 at 16 kHz: real speech
    for what needs a voice, not a tone (the voice-activity detector). The same samples in
    every run: Piper's random variation is off."""
    return _said(text).copy()


def photo(width: int = 64, height: int = 48, seed: int = 0) -> Image.Image:
    """A random-noise RGB image."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels, "RGB")


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with (almost) no pixel data behind it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0"))
        + chunk(b"IEND", b"")
    )
