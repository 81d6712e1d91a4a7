"""The SASRec network (Kang & McAuley, ICDM 2018) and the batching it trains on.

Item ids in the network are catalog index + 1; 0 is padding. Sequences are left-padded so
the newest event is always the last position, which is where a user's state is read.
Blocks are pre-LayerNorm (more stable than the paper's post-LN at the small batch sizes we
use on CPU) and the output layer shares the item embedding, as in the paper.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class CausalBlock(nn.Module):
    """Pre-LN self-attention + feed-forward block with a causal, padding-aware mask."""

    def __init__(self, hidden: int, heads: int, dropout: float, ff_mult: int,
                 attention_dropout: float = 0.0) -> None:
        super().__init__()
        self.heads = heads
        self.attn_dropout = attention_dropout
        self.norm1 = nn.LayerNorm(hidden)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)
        self.norm2 = nn.LayerNorm(hidden)
        self.ff = nn.Sequential(nn.Linear(hidden, ff_mult * hidden), nn.GELU(),
                                nn.Dropout(dropout), nn.Linear(ff_mult * hidden, hidden))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch, length, hidden = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(hidden, dim=-1)
        q, k, v = (t.view(batch, length, self.heads, -1).transpose(1, 2) for t in (q, k, v))
        attended = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.attn_dropout if self.training else 0.0)
        x = x + self.dropout(self.proj(attended.transpose(1, 2).reshape(batch, length, hidden)))
        return x + self.dropout(self.ff(self.norm2(x)))


class SASRecNet(nn.Module):
    """Item + learned position embeddings, causal blocks, a final LayerNorm; scores are dot
    products with the (shared) item embeddings."""

    def __init__(self, n_items: int, hidden: int, layers: int, heads: int, dropout: float,
                 max_len: int, ff_mult: int = 4, attention_dropout: float = 0.0) -> None:
        super().__init__()
        self.hidden = hidden
        self.max_len = max_len
        self.item_emb = nn.Embedding(n_items + 1, hidden, padding_idx=0)
        self.pos_emb = nn.Embedding(max_len, hidden)
        self.emb_dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            CausalBlock(hidden, heads, dropout, ff_mult, attention_dropout)
            for _ in range(layers))
        self.final_norm = nn.LayerNorm(hidden)
        self.apply(_init_weights)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """Hidden states (batch, length, hidden) for left-padded ``seq`` (batch, length)."""
        length = seq.shape[1]
        # Positions count back from the newest event, so a batch padded only to its own
        # longest sequence sees the same position ids as one padded to max_len.
        positions = torch.arange(self.max_len - length, self.max_len, device=seq.device)
        x = self.item_emb(seq) * math.sqrt(self.hidden) + self.pos_emb(positions)[None]
        x = self.emb_dropout(x)
        mask = attention_mask(seq)
        for block in self.blocks:
            x = block(x, mask)
        return self.final_norm(x)

    def item_weights(self) -> torch.Tensor:
        """Output embeddings of the catalog (n_items, hidden), padding row dropped."""
        return self.item_emb.weight[1:]

    def last_state(self, seq: torch.Tensor) -> torch.Tensor:
        """The user state after the newest event: (batch, hidden)."""
        return self.forward(seq)[:, -1]


def attention_mask(seq: torch.Tensor) -> torch.Tensor:
    """(batch, 1, L, L) boolean mask, True = may attend: causal, and never to padding.

    A padding query may attend to itself, so no row is fully masked (that would give NaN
    and, through the values, poison real positions in the next block).
    """
    length = seq.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=seq.device).tril()
    real = seq != 0
    allowed = causal[None] & real[:, None, :]
    allowed |= torch.eye(length, dtype=torch.bool, device=seq.device)[None]
    return allowed[:, None]


def _init_weights(module: nn.Module) -> None:
    # Small normal init (as in BERT-style recommenders): N(0, 1) embeddings make the
    # shared-output logits huge at the start and training unstable.
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()


def left_pad(sequences: Sequence[np.ndarray], max_len: int) -> torch.Tensor:
    """Stack the last ``max_len`` ids of each sequence, left-padded with 0 to the longest."""
    width = max(1, min(max_len, max((len(s) for s in sequences), default=1)))
    out = np.zeros((len(sequences), width), dtype=np.int64)
    for row, seq in enumerate(sequences):
        tail = seq[-width:]
        if len(tail):
            out[row, width - len(tail):] = tail
    return torch.from_numpy(out)


def training_windows(sequences: Sequence[np.ndarray], max_len: int,
                     all_windows: bool) -> list[np.ndarray]:
    """Cut sequences (model ids) into windows of at most max_len + 1 events.

    Each window trains max_len next-item predictions. With ``all_windows`` a long history
    yields non-overlapping windows back to its start; otherwise only the newest window.
    """
    windows = []
    for seq in sequences:
        if len(seq) < 2:
            continue
        end = len(seq)
        while True:
            start = max(0, end - max_len - 1)
            windows.append(seq[start:end])
            if not all_windows or start == 0:
                break
            end = start + 1  # the next window's last target is this window's first input
    return windows
