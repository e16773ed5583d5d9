"""Hard parameter sharing: a shared encoder and one head per task.

Every model of the library is a :class:`MultiTaskModel`. ``forward`` returns a dict task name → prediction; the
split into :meth:`MultiTaskModel.shared` and :meth:`MultiTaskModel.decode` lets gradient methods take per-task
gradients w.r.t. the shared representation and backpropagate through the encoder once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from torch import Tensor, nn


class MultiTaskModel(nn.Module):
    """A shared encoder followed by one head per task.

    Args:
        encoder: maps the input batch to the shared representation (a tensor, or a tuple of tensors for
            encoders that expose skip features).
        heads: task name → head; each head maps the representation to that task's prediction.

    Example:
        >>> import torch
        >>> m = MultiTaskModel(nn.Flatten(), {"a": nn.Linear(4, 2), "b": nn.Linear(4, 1)})
        >>> {k: tuple(v.shape) for k, v in m(torch.zeros(3, 2, 2)).items()}
        {'a': (3, 2), 'b': (3, 1)}
    """

    def __init__(self, encoder: nn.Module, heads: Mapping[str, nn.Module]) -> None:
        super().__init__()
        if not heads:
            raise ValueError("a multi-task model needs at least one head")
        self.encoder = encoder
        self.heads = nn.ModuleDict(dict(heads))

    @property
    def task_names(self) -> list[str]:
        return list(self.heads.keys())

    def shared(self, x: Tensor) -> Tensor | tuple[Tensor, ...]:
        """The shared representation of a batch."""
        return self.encoder(x)

    def decode(self, representation: Tensor | tuple[Tensor, ...]) -> dict[str, Tensor]:
        """Every head applied to the shared representation."""
        return {name: head(representation) for name, head in self.heads.items()}

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return self.decode(self.shared(x))

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the encoder (the part all tasks share)."""
        return self.encoder.parameters()

    def task_parameters(self, name: str) -> Iterator[nn.Parameter]:
        """Parameters of one task's head."""
        return self.heads[name].parameters()
