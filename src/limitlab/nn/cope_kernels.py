"""CoPE attention in query blocks with a hand-written backward: the same maths, O(block × Tk) memory.

The reference path (:meth:`limitlab.nn.positions.cope.CoPE.on_logits` inside the explicit attention path)
materialises, for every (query, key) pair, the logits, gates, positions, two int64 index tensors, the blend
weight, two gathered values, the position logits and the softmax weights, and autograd keeps most of them for
the backward pass: about a dozen (M, B, H, Tq, Tk) tensors per layer.

This module computes the same attention output and the same gradients without keeping any of them:

* forward: for a block of queries at a time, the logits, gates, positions and position logits of that block
  only; what is kept for the backward pass is q, k, v, the table, the mask and the output;
* backward: recompute the block's forward quantities from those and apply the chain rule by hand::

      dL (logit grads)  = P ⊙ (dP − rowsum(dO ⊙ O)),    dP = dO vᵀ
      dz[⌊p⌋] += dL (1 − w),  dz[⌈p⌉] += dL w            (scatter-add into the p_max + 1 slots)
      dp       = dL (z[⌈p⌉] − z[⌊p⌋])                     (w = p − ⌊p⌋; 0 at integer p, so where clamped)
      dg_t     = Σ_{j ≤ t} dp_j                          (adjoint of the reverse cumsum: a forward cumsum)
      d gate logits = dg · g (1 − g)

* causal blocks: with all queries present (query i at position i), the queries of block [i0, i1) see keys
  [0, i1) only, so the keys after the block are never touched: about half of the reference's (Tq × Tk) work.

Gates at masked pairs are σ(−inf) = 0 as in the reference, so the positions, the blend and every gradient agree
with it. Arithmetic is in float32 at least (float64 for float64 inputs), autocast off, forward and backward
alike (so under bf16 autocast on CUDA it is more precise than the reference path); the output has v's dtype.
"""

from __future__ import annotations

import math

import torch

# Elements of one (M, B, H, block, Tk) tensor the forward and backward work on at a time (float32: 16 MiB),
# and the most query rows per block (smaller blocks skip more of the masked causal keys).
BLOCK_ELEMENTS = 1 << 22
BLOCK_ROWS = 128
PACK_SCATTER = True  # one complex scatter-add instead of two real ones (CPU only; see slot_sums)


def query_block(shape_mbh: int, tq: int, tk: int, elements: int | None = None) -> int:
    """Rows per query block: one block tensor has at most about ``elements`` entries; 16 <= rows <= BLOCK_ROWS."""
    elements = BLOCK_ELEMENTS if elements is None else elements
    return max(1, min(tq, BLOCK_ROWS, max(16, elements // max(shape_mbh * tk, 1))))


class _CoPEAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, table, gate_k, allowed, p_max: int, scale_pos: bool, causal_full: bool, block: int):
        """q: (M, B, H, Tq, hd); k, v: (M, B, H, Tk, hd); table: (M, hd, P+1); gate_k: like k, or None (gates
        from the attention logits); allowed: bool, broadcastable to (M, B, 1, Tq, Tk). Returns (M, B, H, Tq, hd)."""
        dt = torch.promote_types(q.dtype, torch.float32)
        qf, kf, vf, tf = q.to(dt), k.to(dt), v.to(dt), table.to(dt)
        gkf = None if gate_k is None else gate_k.to(dt)
        tq = q.shape[3]
        out = torch.empty(*q.shape[:3], tq, v.shape[-1], dtype=dt, device=q.device)
        with torch.autocast(q.device.type, enabled=False):  # the backward recomputes in dt: so must the forward
            for i0 in range(0, tq, block):
                i1 = min(i0 + block, tq)
                f = _block_forward(qf, kf, tf, gkf, allowed, i0, i1, p_max, scale_pos, causal_full)
                out[..., i0:i1, :] = f["probs"] @ vf[..., :f["nk"], :]  # (M, B, H, bq, hd)
        ctx.save_for_backward(q, k, v, table, gate_k, allowed, out)
        ctx.args = (p_max, scale_pos, causal_full, block)
        return out.to(v.dtype)

    @staticmethod
    def backward(ctx, d_out):
        q, k, v, table, gate_k, allowed, out = ctx.saved_tensors
        p_max, scale_pos, causal_full, block = ctx.args
        dt = out.dtype
        qf, kf, vf, tf = q.to(dt), k.to(dt), v.to(dt), table.to(dt)
        gkf = None if gate_k is None else gate_k.to(dt)
        d_out = d_out.to(dt)
        hd, tq = q.shape[-1], q.shape[3]
        inv = 1.0 / math.sqrt(hd)
        dq, dk, dv = torch.zeros_like(qf), torch.zeros_like(kf), torch.zeros_like(vf)
        d_table = torch.zeros_like(tf)
        d_gk = None if gkf is None else torch.zeros_like(gkf)
        with torch.autocast(q.device.type, enabled=False):
            delta = (d_out * out).sum(-1, keepdim=True)  # (M, B, H, Tq, 1)
            for i0 in range(0, tq, block):
                i1 = min(i0 + block, tq)
                f = _block_forward(qf, kf, tf, gkf, allowed, i0, i1, p_max, scale_pos, causal_full)
                nk, qb, do = f["nk"], qf[..., i0:i1, :], d_out[..., i0:i1, :]
                probs = f["probs"]  # (M, B, H, bq, nk)
                dv[..., :nk, :] += probs.transpose(-1, -2) @ do
                d_logits = (do @ vf[..., :nk, :].transpose(-1, -2)).sub_(delta[..., i0:i1, :]).mul_(probs)
                d_extra = d_logits * inv if scale_pos else d_logits  # (M, B, H, bq, nk)
                # extra = z[lo] + w·(z[lo+1] − z[lo]): dz[lo] += dE − dE·w, dz[lo+1] += dE·w
                w, lo = f["w"], f["lo"]
                total, spill = slot_sums(lo, d_extra, d_extra * w, f["z"].shape[-1], PACK_SCATTER and not qf.is_cuda)
                # spill: Σ dE·w per slot ⌊p⌋, which belongs to slot ⌊p⌋ + 1 (0 at P: w = 0 there)
                d_z = total - spill  # (M, B, H, bq, P+1)
                d_z[..., 1:] += spill[..., :-1]
                # dp = dE·(z[⌈p⌉] − z[⌊p⌋]): 0 where p is an integer (⌈p⌉ = ⌊p⌋), so also where clamped
                d_p = (d_extra * f["dz_lo"]).masked_fill_(w == 0, 0.0)
                g = f["g"]
                d_gl = d_p.cumsum_(-1).mul_(torch.addcmul(g, g, g, value=-1.0))  # · σ' = g − g²
                d_table += torch.einsum("mbhqd,mbhqp->mdp", qb, d_z)
                dq_b = d_z @ tf.transpose(-1, -2)[:, None, None]  # (M, B, H, bq, hd)
                if gkf is None:
                    d_logits += d_gl
                else:
                    dq_b += (d_gl @ gkf[..., :nk, :]) * inv
                    d_gk[..., :nk, :] += (d_gl.transpose(-1, -2) @ qb) * inv
                dq_b += (d_logits @ kf[..., :nk, :]) * inv
                dk[..., :nk, :] += (d_logits.transpose(-1, -2) @ qb) * inv
                dq[..., i0:i1, :] = dq_b
        return (dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype), d_table.to(table.dtype),
                None if d_gk is None else d_gk.to(gate_k.dtype), None, None, None, None, None)


def slot_sums(index: torch.Tensor, a: torch.Tensor, b: torch.Tensor, slots: int,
              pack: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Scatter-add a and b (..., nk) into ``slots`` slots by ``index``: (..., slots) each. ``pack``: as one
    complex scatter (a real, b imaginary), which reads the index once (faster on a CPU)."""
    shape = (*a.shape[:-1], slots)
    if pack:
        both = torch.complex(a, b)
        sums = torch.zeros(shape, dtype=both.dtype, device=a.device).scatter_add_(-1, index, both)
        return sums.real, sums.imag
    zeros = torch.zeros(shape, dtype=a.dtype, device=a.device)
    return zeros.scatter_add(-1, index, a), zeros.scatter_add(-1, index, b)


def _block_forward(qf, kf, tf, gkf, allowed, i0: int, i1: int, p_max: int, scale_pos: bool,
                   causal_full: bool) -> dict:
    """Queries [i0, i1): softmax weights, and the gates and blend the backward pass needs."""
    inv = 1.0 / math.sqrt(qf.shape[-1])
    nk = i1 if causal_full else kf.shape[3]  # keys after the block's last query are all masked
    qb = qf[..., i0:i1, :]
    masked = ~allowed[..., i0:i1, :nk]  # (Mq, Bq, 1, bq, nk)
    logits = ((qb * inv) @ kf[..., :nk, :].transpose(-1, -2)).masked_fill_(masked, float("-inf"))
    if gkf is None:
        g = torch.sigmoid(logits)  # (M, B, H, bq, nk), exactly 0 where masked
    else:
        g = torch.sigmoid(((qb * inv) @ gkf[..., :nk, :].transpose(-1, -2)).masked_fill_(masked, float("-inf")))
    p = g.flip(-1).cumsum(-1).flip(-1).clamp_(max=p_max)  # reverse cumsum from key j to the query
    z = qb @ tf[:, None, None]  # (M, B, H, bq, P+1): z[t] = q · e[t]
    dz = torch.zeros_like(z)
    dz[..., :-1] = z[..., 1:] - z[..., :-1]  # z[t+1] − z[t], 0 at t = P
    lo_f = p.floor()
    w = p - lo_f
    lo = lo_f.long()
    z_lo, dz_lo = z.gather(-1, lo), dz.gather(-1, lo)
    extra = torch.addcmul(z_lo, w, dz_lo)  # (1 − w)·z[⌊p⌋] + w·z[⌈p⌉]
    logits += extra * inv if scale_pos else extra
    probs = torch.softmax(logits, dim=-1)
    return {"nk": nk, "probs": probs, "g": g, "z": z, "lo": lo, "w": w, "dz_lo": dz_lo}


def cope_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, table: torch.Tensor,
                   allowed: torch.Tensor, p_max: int, scale_position_logits: bool = False,
                   gate_k: torch.Tensor | None = None, causal_full: bool = False,
                   block: int | None = None) -> torch.Tensor:
    """CoPE attention output (M, B, H, Tq, hd), equal to the reference explicit path.

    ``allowed``: which (query, key) pairs may attend, broadcastable to (M, B, 1, Tq, Tk) (causal, padding);
    ``causal_full``: query i sits at position i and every query is present, so block [i0, i1) needs keys
    [0, i1) only; ``block``: query rows per block (default: :func:`query_block`).
    """
    m, b, h, tq, _ = q.shape
    if block is None:
        block = query_block(m * b * h, tq, k.shape[3])
    if block < 1:
        raise ValueError(f"cope block must be >= 1, got block={block}")
    allowed = allowed.to(torch.bool)
    return _CoPEAttention.apply(q, k, v, table, gate_k, allowed, p_max, scale_position_logits, causal_full, block)
