"""A tiny causal language model built from code, for tests, examples and benchmarks.

Nothing is downloaded: the tokenizer is trained in-process with ``tokenizers`` on the text you
give it, and the model is a randomly initialised two-layer Llama. It learns small memorisation
sets in seconds on a CPU, which is all the training code needs to be exercised honestly.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

#: A chat template in the common ChatML shape, so chat data and the local provider can use it.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
#: Standard deviation of the output layer's random init (see the comment in build_tiny_llama).
LM_HEAD_INIT_STD = 0.1

_DEFAULT_TEXT = [
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.",
    "### Instruction: ### Input: ### Response:",
    "alert firing critical warning severity node disk memory cpu latency pod restart deploy rollback",
    "kubectl get pods logs describe events drain cordon uncordon scale rollout undo restart",
    "postgres replication lag primary replica failover backup restore vacuum connections",
    "summary impact cause next steps title sev1 sev2 sev3 sev4 json true false null",
]


def build_tiny_llama(
    output_dir: Path | str,
    *,
    texts: Iterable[str] = (),
    vocab_size: int = 512,
    hidden_size: int = 64,
    layers: int = 2,
    heads: int = 4,
    max_position_embeddings: int = 512,
    seed: int = 0,
) -> Path:
    """Write a tokenizer and a randomly initialised tiny Llama to ``output_dir``; returns it.

    ``texts`` (for example the training data) are added to the tokenizer's training text so the
    vocabulary covers them; the model loads with ``AutoModelForCausalLM.from_pretrained``.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    corpus = [*_DEFAULT_TEXT, *texts]

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(output)

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=max_position_embeddings,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    # The final RMSNorm fixes the hidden state's norm at sqrt(hidden_size), so with the usual 0.02
    # init the output layer caps every logit near ±1.3: the model could never become confident, and
    # a LoRA adapter (which cannot touch lm_head under TRL's fused loss) could not memorise anything.
    # A wider output layer gives it the headroom a pretrained model has.
    with torch.no_grad():
        model.lm_head.weight.normal_(mean=0.0, std=LM_HEAD_INIT_STD)
    model.save_pretrained(output)
    return output
