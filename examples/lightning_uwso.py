"""Train the embedded MultiFashion problem with PyTorch Lightning and any taskbalance method, chosen by name.

    pip install -c constraints-cpu.txt -e ".[lightning]"
    python examples/lightning_uwso.py --method uwso --max-steps 200
    python examples/lightning_uwso.py --method pcgrad --max-steps 200

Every method is driven through the one step verb of :class:`taskbalance.method.Method`,
``method.step(losses, shared_parameters=..., representation=...)``:

- a loss weighting (UW-SO, UW, DWA, FAMO, ...) uses Lightning's automatic optimisation: ``training_step`` returns
  the losses' sum for logging, and the module's ``backward`` hook calls ``method.step`` instead of
  ``loss.backward()`` (for a loss weighting these are the same one backward of the weighted total);
- a gradient method (PCGrad, CAGrad, Nash-MTL, ...) needs several backward passes per step, so the module switches
  to manual optimisation and calls ``method.step`` itself between ``zero_grad`` and ``optimizer.step``.

The epoch hook (``method.end_epoch``, DWA and STCH need it) gets the epoch-mean training losses, and methods that
measure the same batch after the step (FAMO) get it through ``method.after_step``.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from taskbalance import data as datasets
from taskbalance import methods, models
from taskbalance.models.base import MultiTaskModel
from taskbalance.tasks.base import Task


class MultiTaskLightning(L.LightningModule):
    """A shared-encoder model, its tasks and a taskbalance method, trained by Lightning.

    Args:
        model: the multi-task model (``shared`` / ``decode`` / ``shared_parameters``).
        tasks: task name → task (loss and metrics).
        method: the registry name of any taskbalance method.
        method_options: its hyper-parameters.
        lr: Adam learning rate.
    """

    def __init__(
        self,
        model: MultiTaskModel,
        tasks: Mapping[str, Task],
        method: str,
        method_options: Mapping[str, Any] | None = None,
        lr: float = 1e-3,
    ) -> None:
        super().__init__()
        self.model = model
        self.tasks = dict(tasks)
        self.method = methods.create(method, self.tasks, **dict(method_options or {}))
        self.lr = lr
        # Lightning's automatic optimisation runs one backward per step: enough for loss weightings only.
        self.automatic_optimization = self.method.kind == "loss weighting"
        self._step_inputs: tuple[list[Tensor], Tensor | tuple[Tensor, ...]] | None = None
        self._loss_sum = torch.zeros(len(self.tasks))
        self._batches = 0

    def _losses(self, batch: tuple[Tensor, dict[str, Tensor]]) -> tuple[list[Tensor], Tensor | tuple[Tensor, ...]]:
        inputs, targets = batch
        representation = self.model.shared(inputs)
        predictions = self.model.decode(representation)
        return [task.loss(predictions[name], targets[name]) for name, task in self.tasks.items()], representation

    def _method_step(self, losses: list[Tensor], representation: Tensor | tuple[Tensor, ...]) -> None:
        self.method.step(losses, shared_parameters=self.model.shared_parameters(), representation=representation)

    def training_step(self, batch: tuple[Tensor, dict[str, Tensor]], batch_index: int) -> Tensor | None:
        losses, representation = self._losses(batch)
        detached = torch.stack(losses).detach()
        self._loss_sum = self._loss_sum.to(detached) + detached
        self._batches += 1
        self.log_dict({f"loss/{name}": value for name, value in zip(self.tasks, detached, strict=True)})
        if self.automatic_optimization:
            self._step_inputs = (losses, representation)
            return torch.stack(losses).sum()  # for logging; `backward` below does the method's step
        optimizer = self.optimizers()
        optimizer.zero_grad()
        self._method_step(losses, representation)
        optimizer.step()
        return None

    def backward(self, loss: Tensor, *args: Any, **kwargs: Any) -> None:
        """Automatic optimisation's backward: the method's step on the stored task losses, not ``loss.backward()``."""
        assert self._step_inputs is not None, "backward() without a training_step"
        self._method_step(*self._step_inputs)
        self._step_inputs = None

    def on_train_batch_end(self, outputs: Any, batch: tuple[Tensor, dict[str, Tensor]], batch_index: int) -> None:
        if self.method.needs_losses_after_step:
            with torch.no_grad():
                after, _ = self._losses(batch)
            self.method.after_step(torch.stack(after))
        self.log_dict({f"weight/{name}": w for name, w in zip(self.tasks, self.method.last_weights, strict=True)})

    def on_train_epoch_end(self) -> None:
        if self._batches:
            self.method.end_epoch(self._loss_sum / self._batches)
        self._loss_sum, self._batches = torch.zeros(len(self.tasks)), 0

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(
            [
                {"params": list(self.model.parameters())},
                # A method's own parameters (UW's log-variances) train without weight decay.
                {"params": list(self.method.parameters()), "weight_decay": 0.0},
            ],
            lr=self.lr,
        )


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="uwso", help="any name `taskbalance methods` lists (default uwso)")
    parser.add_argument("--max-steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--num-train", type=int, default=10_000, help="training samples of MultiFashion")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    L.seed_everything(args.seed, verbose=False)
    data = datasets.create("multifashion", num_train=args.num_train, num_val=256, num_test=256)
    model = models.create("multilenet", heads={name: task.head for name, task in data.tasks.items()})
    module = MultiTaskLightning(model, data.tasks, args.method)
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=args.max_steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, DataLoader(data.train, batch_size=args.batch_size, shuffle=True))
    weights = {name: round(float(w), 4) for name, w in zip(data.tasks, module.method.last_weights, strict=True)}
    print(f"{args.method} ({module.method.kind}): {trainer.global_step} steps; last weights {weights}")
    return weights


if __name__ == "__main__":
    main()
