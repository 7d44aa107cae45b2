"""The teacher: the language model's own greedy answers to typed questions.

The speech adapter learns to make the LM answer spoken words as it answers the same words
typed, so the typed answers are the targets. They are computed in batches (left-padded),
once, and cached with the features.
"""

import torch

from fusion.model import LunettesModel

ANSWER_TOKENS = 20  # teacher answer length kept as a target (the metric compares 16)


def typed_prompt_ids(model: LunettesModel, text: str) -> list[int]:
    """Token ids of the chat prompt for a typed question, exactly as LunettesModel builds it."""
    chat = [{"role": "system", "content": model.system_prompt}] if model.system_prompt else []
    chat.append({"role": "user", "content": text})
    prompt = model.tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    return model.tokenizer.encode(prompt, add_special_tokens=False)


@torch.inference_mode()
def teacher_answers(
    model: LunettesModel, questions: list[str], batch_size: int = 32
) -> list[list[int]]:
    """Greedy answer ids (without the end-of-turn token) for each typed question."""
    answers: list[list[int]] = []
    pad = model.tokenizer.pad_token_id or 0
    for start in range(0, len(questions), batch_size):
        prompts = [typed_prompt_ids(model, q) for q in questions[start : start + batch_size]]
        width = max(len(p) for p in prompts)
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])  # left padding
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        output = model.lm.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=ANSWER_TOKENS,
            do_sample=False,
            pad_token_id=pad,
            eos_token_id=sorted(model.stop_ids),
        )
        for row in output[:, width:].tolist():
            answer = []
            for token in row:
                if token in model.stop_ids:
                    break
                answer.append(token)
            answers.append(answer)
    return answers
