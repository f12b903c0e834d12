"""Counter-based random numbers for a stack of models, generated on the device.

Every number is a pure function of ``(seed of model m, stream, step, element index)``: a splitmix64 hash
evaluated with int64 tensor ops. So

* the data a model sees does not depend on which other models share its stack, or on padding;
* a stack of M models draws all its data in a handful of kernel launches, whatever M is;
* resuming needs no generator state: step k always yields the same batch.

>>> rng = StackRNG(torch.tensor([0, 1]))           # two models, seeds 0 and 1
>>> rng.randint((3,), high=torch.tensor([10, 2]), step=0).shape
torch.Size([2, 3])
"""

from __future__ import annotations

import math

import torch

_GOLDEN = -0x61C8864680B583EB  # 0x9E3779B97F4A7C15 as a signed int64
_MUL1 = -0x40A7B892E31B1A47  # 0xBF58476D1CE4E5B9
_MUL2 = -0x6B2FB644ECCEEE15  # 0x94D049BB133111EB

TRAIN, TEST = 0, 1  # stream ids: train and test never share a key


def _shr(x: torch.Tensor, s: int) -> torch.Tensor:
    """Logical right shift of int64 (torch's >> is arithmetic)."""
    return (x >> s) & ((1 << (64 - s)) - 1)


def mix64(x: torch.Tensor) -> torch.Tensor:
    """splitmix64 finaliser on int64 tensors (wrapping arithmetic)."""
    x = x + _GOLDEN
    x = (x ^ _shr(x, 30)) * _MUL1
    x = (x ^ _shr(x, 27)) * _MUL2
    return x ^ _shr(x, 31)


class StackRNG:
    """Per-model random streams. ``seeds``: (M,) int64; every draw returns a leading model dim M.

    Each call takes a ``step`` (the training step, or the evaluation batch index) and a ``salt`` so that
    two draws inside one step (tokens, then queries) are independent.
    """

    def __init__(self, seeds: torch.Tensor | list[int], stream: int = TRAIN, row_offset: int = 0) -> None:
        self.seeds = torch.as_tensor(seeds, dtype=torch.int64)
        self.stream = stream
        self.row_offset = row_offset  # added to the first coordinate of every draw (the batch row)

    @property
    def device(self) -> torch.device:
        return self.seeds.device

    def to(self, device: torch.device | str) -> StackRNG:
        return StackRNG(self.seeds.to(device), self.stream, self.row_offset)

    def rows_from(self, offset: int) -> StackRNG:
        """The same streams, with batch row 0 of every draw being row ``offset`` of this one.

        Samplers draw with the batch as the first dim of every shape, so a batch of b sequences drawn from
        ``rng.rows_from(j)`` is rows j..j+b of a larger batch: evaluation does not depend on its batch size.
        """
        return StackRNG(self.seeds, self.stream, self.row_offset + offset)

    def bits(self, shape: tuple[int, ...], step: int | torch.Tensor, salt: int = 0) -> torch.Tensor:
        """Raw 64-bit hashes, shape (M, *shape). ``step`` is an int or a per-model (M,) tensor.

        The first dim of ``shape`` is the batch row (shifted by ``row_offset``)."""
        step = torch.as_tensor(step, dtype=torch.int64, device=self.device)
        key = mix64(mix64(self.seeds) ^ mix64((self.stream * 1_000_003 + salt) * 0x100000001B3 + step))
        # Hash one coordinate at a time (not a flat index), so element (b, t) gets the same number whatever the
        # padded extent of the other dims: a model's tokens do not change when its stack is padded to a longer T.
        bits = key.view(-1, *([1] * len(shape)))  # (M, 1, ..., 1)
        for dim, size in enumerate(shape):
            start = self.row_offset if dim == 0 else 0
            coord = torch.arange(start, start + size, dtype=torch.int64, device=self.device)
            coord = coord.view(-1, *([1] * (len(shape) - dim - 1)))
            bits = mix64(bits + coord * _GOLDEN)  # broadcasts to (M, shape[0], ..., shape[dim], 1, ...)
        return bits.expand(-1, *shape)  # (M, *shape)

    def random(self, shape: tuple[int, ...], step: int | torch.Tensor, salt: int = 0) -> torch.Tensor:
        """Uniform float32 in [0, 1), shape (M, *shape)."""
        return _shr(self.bits(shape, step, salt), 40).to(torch.float32) * (1.0 / (1 << 24))

    def randint(
        self, shape: tuple[int, ...], high: torch.Tensor | int, step: int | torch.Tensor, salt: int = 0, low: int = 0
    ) -> torch.Tensor:
        """Uniform integers in [low, high); ``high`` is an int or a per-model (M,) tensor."""
        high = torch.as_tensor(high, dtype=torch.int64, device=self.device)
        span = (high - low).view(-1, *([1] * len(shape)))  # (M or 1, 1, ...)
        return low + _shr(self.bits(shape, step, salt), 1) % span

    def normal(self, shape: tuple[int, ...], step: int | torch.Tensor, salt: int = 0) -> torch.Tensor:
        """Standard normal float32 (Box-Muller), shape (M, *shape)."""
        u = self.random((*shape, 2), step, salt)
        radius = torch.sqrt(-2.0 * torch.log1p(-u[..., 0]))  # 1-u in (0, 1]: log is finite
        return radius * torch.cos(2.0 * math.pi * u[..., 1])

    def permutation_keys(self, shape: tuple[int, ...], step: int | torch.Tensor, salt: int = 0) -> torch.Tensor:
        """Random keys whose argsort along the last dim is a uniform random permutation."""
        return self.bits(shape, step, salt)
