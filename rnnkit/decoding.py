"""Choosing the next token from logits: greedy, or sampling with temperature and top-k.

Shapes: b batch, v vocabulary.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from rnnkit.errors import ConfigError


def check_sampling(temperature: float, top_k: int) -> None:
    """Raise a ConfigError for a negative temperature or top_k."""
    if not (math.isfinite(temperature) and temperature >= 0):
        raise ConfigError(
            f"temperature must be >= 0 and finite, got {temperature}",
            "0 is greedy; 1 samples as trained",
        )
    if top_k < 0:
        raise ConfigError(f"top_k must be >= 0, got {top_k}", "0 keeps the whole vocabulary")


def sample_logits(
    logits: Tensor, temperature: float = 1.0, top_k: int = 0, generator=None
) -> Tensor:
    """Draw one token per row of ``logits`` (b, v) and return ids (b,).

    p = softmax(logits / temperature), restricted to the ``top_k`` most likely tokens when
    top_k > 0. ``temperature == 0`` is greedy decoding (argmax).
    """
    check_sampling(temperature, top_k)
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits / temperature
    if 0 < top_k < logits.size(-1):
        kth = logits.topk(top_k, dim=-1).values[..., -1:]  # (b, 1): the k-th largest
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits.float(), dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


# ----------------------------------------------------------------------------- sequence decoding
# The model interface: ``model.encode(src, lengths) -> (memory, state)`` and
# ``model.decode_step(y_prev (b,), state, memory) -> (logits (b, v), state, attention)``, where
# memory and state have ``.index(idx)`` to reorder or repeat the batch (see rnnkit.seq2seq).


@torch.no_grad()
def greedy(model, src: Tensor, lengths: Tensor, max_len: int, bos: int = 1, eos: int = 2):
    """The most likely token at every step. Returns (tokens (b, <=max_len), attention list)."""
    return _run(model, src, lengths, max_len, bos, eos, lambda logits: logits.argmax(-1))


@torch.no_grad()
def sample(model, src, lengths, max_len, temperature=1.0, top_k=0, generator=None, bos=1, eos=2):
    """Ancestral sampling with temperature and top-k. Returns (tokens, attention list)."""
    check_sampling(temperature, top_k)
    return _run(
        model,
        src,
        lengths,
        max_len,
        bos,
        eos,
        lambda logits: sample_logits(logits, temperature, top_k, generator),
    )


def _run(model, src, lengths, max_len, bos, eos, choose):
    model.eval()
    memory, state = model.encode(src, lengths)
    y = torch.full((src.size(0),), bos, dtype=torch.long, device=src.device)
    done = torch.zeros_like(y, dtype=torch.bool)
    tokens, attention = [], []
    for _ in range(max_len):
        logits, state, a = model.decode_step(y, state, memory)
        y = torch.where(done, torch.full_like(y, eos), choose(logits))
        tokens.append(y)
        attention.append(a)
        done |= y == eos
        if done.all():
            break
    return torch.stack(tokens, 1), attention


def length_penalty(length: int, alpha: float) -> float:
    """GNMT's lp(Y) = ((5 + |Y|) / 6) ** alpha (Wu et al. 2016); alpha = 0 turns it off."""
    return ((5 + length) / 6) ** alpha


@torch.no_grad()
def beam_search(
    model,
    src: Tensor,
    lengths: Tensor,
    max_len: int,
    beam: int = 5,
    alpha: float = 0.0,
    n_best: int = 1,
    bos: int = 1,
    eos: int = 2,
) -> list[list[tuple[list[int], float]]]:
    """Beam search, batched: each source keeps ``beam`` hypotheses, flattened to b*k rows.

    A hypothesis is finished when it emits EOS (which is part of it) or reaches ``max_len``;
    its score is log p(Y | X) / lp(|Y|). Returns, per source, the ``n_best`` finished
    hypotheses as (tokens, score), best first.
    """
    if beam < 1 or not 1 <= n_best <= beam:
        raise ConfigError(
            f"need beam >= 1 and 1 <= n_best <= beam, got beam={beam}, n_best={n_best}"
        )
    model.eval()
    b, k = src.size(0), beam
    memory, state = model.encode(src, lengths)
    rows = torch.arange(b, device=src.device).repeat_interleave(k)  # (b*k,): source of each row
    memory, state = memory.index(rows), state.index(rows)
    y = torch.full((b * k,), bos, dtype=torch.long, device=src.device)
    # only the first of the k identical start hypotheses is alive, so the first step fans out
    dtype = torch.promote_types(memory.states.dtype, torch.float32)
    logp = torch.full((b, k), float("-inf"), device=src.device, dtype=dtype)
    logp[:, 0] = 0.0
    history = torch.zeros(b * k, 0, dtype=torch.long, device=src.device)
    finished: list[list[tuple[list[int], float]]] = [[] for _ in range(b)]
    for t in range(max_len):
        logits, state, _ = model.decode_step(y, state, memory)
        v = logits.size(-1)
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # fp16 -> fp32
        cand = (logp.view(b * k, 1) + torch.log_softmax(logits, -1)).view(b, k * v)
        top, idx = cand.topk(min(2 * k, k * v), dim=-1)  # room to replace finished ones
        parent, token = idx // v, idx % v  # (b, 2k)
        new_logp = torch.full_like(logp, float("-inf"))
        pick = torch.zeros(b, k, dtype=torch.long, device=src.device)
        for i in range(b):
            slot = 0
            for j in range(top.size(1)):
                score = top[i, j].item()
                if score == float("-inf") or slot == k:
                    break
                seq = history[i * k + parent[i, j]].tolist() + [int(token[i, j])]
                if token[i, j] == eos or t == max_len - 1:
                    finished[i].append((seq, score / length_penalty(len(seq), alpha)))
                else:
                    new_logp[i, slot], pick[i, slot] = score, idx[i, j]
                    slot += 1
        if new_logp.isinf().all():
            break
        src_rows = (torch.arange(b, device=src.device)[:, None] * k + pick // v).view(-1)
        history = torch.cat([history[src_rows], (pick % v).view(-1, 1)], dim=1)
        state, y, logp = state.index(src_rows), (pick % v).view(-1), new_logp
        # stop a source once its best unfinished hypothesis cannot beat its k-th finished one
        # (only safe without a length penalty, where scores only fall as hypotheses grow)
        if alpha == 0 and all(
            len(f) >= n_best and sorted(s for _, s in f)[-n_best] >= logp[i].max().item()
            for i, f in enumerate(finished)
        ):
            break
    return [sorted(f, key=lambda h: -h[1])[:n_best] for f in finished]
