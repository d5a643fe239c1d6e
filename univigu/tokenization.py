"""A word-level tokenizer for closed-vocabulary worlds (ShapesWorld), as a transformers fast tokenizer.

Real Wan2.1 uses UMT5's SentencePiece tokenizer; a small world needs only its words. Both load with
``AutoTokenizer.from_pretrained`` and append ``</s>`` to every text, so the pipeline treats them alike.
"""

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>")  # ids 0, 1, 2


def build_word_tokenizer(words: list[str], model_max_length: int = 64) -> PreTrainedTokenizerFast:
    """Tokenizer over ``words`` (+ ``<pad>``=0, ``</s>``=1, ``<unk>``=2); "," and "." are their own tokens."""
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for word in sorted(set(words) - set(vocab)):
        vocab[word] = len(vocab)
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    core.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    core.decoder = decoders.WordPiece(prefix="##", cleanup=True)  # joins with spaces, glues "," and "."
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=model_max_length,
        padding_side="right",
    )
