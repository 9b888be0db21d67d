"""Recurrent models for the sequence tasks: a cell factory, a seq2one classifier and a seq2seq tagger.

Both take right-padded batches plus true lengths and pack them, so padding never reaches the
recurrence and a sequence gives the same answer alone or in any batch.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

CELL_TYPES: dict[str, type[nn.RNNBase]] = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


def make_rnn(cell: str, input_size: int, hidden_size: int, num_layers: int, bidirectional: bool = False) -> nn.RNNBase:
    if cell not in CELL_TYPES:
        raise ValueError(f"unknown recurrent cell {cell!r} (choose from {', '.join(CELL_TYPES)})")
    return CELL_TYPES[cell](input_size, hidden_size, num_layers=num_layers, batch_first=True,
                            bidirectional=bidirectional)


def _pack(x: torch.Tensor, lengths: torch.Tensor) -> nn.utils.rnn.PackedSequence:
    return pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)


class SequenceClassifier(nn.Module):
    """seq2one: a linear head on the hidden state at each sequence's last valid step."""

    def __init__(self, cell: str, input_size: int, hidden_size: int, num_layers: int, num_classes: int) -> None:
        super().__init__()
        self.rnn = make_rnn(cell, input_size, hidden_size, num_layers)
        self.head = nn.Linear(hidden_size, num_classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        _, h = self.rnn(_pack(x, lengths))
        if isinstance(h, tuple):  # LSTM returns (h_n, c_n)
            h = h[0]
        return self.head(h[-1])  # h_n of the top layer = state after each sequence's last real step


class SequenceTagger(nn.Module):
    """Aligned seq2seq: one output per input step (padding positions are zero and must be masked)."""

    def __init__(self, cell: str, input_size: int, hidden_size: int, num_layers: int, outputs: int = 1) -> None:
        super().__init__()
        self.rnn = make_rnn(cell, input_size, hidden_size, num_layers)
        self.head = nn.Linear(hidden_size, outputs)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(_pack(x, lengths))
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return self.head(out).squeeze(-1)
