"""Reusable models built from rnnkit's layers; they know no task.

stack        `recurrent_stack` / `StackConfig`: the one factory for RNN / LSTM / GRU stacks
sequence     `SequenceModel`: embedding or features in; a head per step, last or mean
language     `LanguageModel`: embedding -> stack -> next-token logits (char and word LMs)
seq2seq      `Seq2Seq`: encoder-decoder with attention, the encoder pluggable
ntm          `NTM`: the Neural Turing Machine
"""

from rnnkit.models.language import LanguageModel, LanguageModelConfig
from rnnkit.models.ntm import NTM
from rnnkit.models.seq2seq import RecurrentEncoder, Seq2Seq, Seq2SeqModelConfig
from rnnkit.models.sequence import SequenceModel, SequenceModelConfig
from rnnkit.models.stack import CELLS, StackConfig, VariantConfig, recurrent_stack, stack_from

__all__ = [
    "CELLS",
    "StackConfig",
    "VariantConfig",
    "recurrent_stack",
    "stack_from",
    "SequenceModel",
    "SequenceModelConfig",
    "LanguageModel",
    "LanguageModelConfig",
    "Seq2Seq",
    "Seq2SeqModelConfig",
    "RecurrentEncoder",
    "NTM",
]
