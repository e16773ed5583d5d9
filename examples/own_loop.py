"""Any taskbalance method in a training loop of your own: your model, your data, no taskbalance trainer.

    python examples/own_loop.py --method uwso --option temperature=2
    python examples/own_loop.py --method uw        # learns one log-variance per task
    python examples/own_loop.py --method pcgrad    # a gradient method: the very same calls

Two tasks share an MLP trunk on synthetic data whose losses differ by four orders of magnitude: a price in dollars
(mean squared error ≈ 1e4 at the start) and a 3-way category (cross-entropy ≈ 1). Under equal weights (``--method
ew``) the price's gradient swamps the category's in the shared trunk; each method trades the two tasks differently,
which the test metrics at the end show.

What the loop must do for every method, read top to bottom below:

1. give the optimizer the method's own parameters too (UW learns its log-variances; for every other method the
   list is empty), without weight decay;
2. replace ``sum(losses).backward()`` by ``method.step(losses, shared_parameters=..., representation=...)``, which
   fills every ``.grad`` — one weighted backward for a loss weighting, one backward per task and an aggregation
   for a gradient method;
3. after ``optimizer.step()``, give the batch's new losses to the methods that ask for them (FAMO);
4. at the end of each epoch, give the epoch's mean training losses to ``method.end_epoch`` (DWA, STCH).
"""

from __future__ import annotations

import argparse
import ast
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from taskbalance import methods

TASKS = ("price", "category")


class PriceAndCategory(nn.Module):
    """A shared trunk and one linear head per task: the shape of every hard-parameter-sharing model."""

    def __init__(self, features: int = 16, hidden: int = 64, categories: int = 3) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.price = nn.Linear(hidden, 1)
        self.category = nn.Linear(hidden, categories)


def make_data(samples: int, seed: int, features: int = 16, categories: int = 3) -> tuple[Tensor, Tensor, Tensor]:
    """Inputs, prices (dollars: a linear function of the inputs times 100, plus noise) and categories."""
    truth = torch.Generator().manual_seed(1234)  # the same rule for every split
    price_rule = torch.randn(features, generator=truth)
    category_rule = torch.randn(features, categories, generator=truth)
    draw = torch.Generator().manual_seed(seed)
    x = torch.randn(samples, features, generator=draw)
    price = 100.0 * (x @ price_rule) / features**0.5 + 5.0 * torch.randn(samples, generator=draw)
    category = (x @ category_rule).argmax(dim=1)
    return x, price, category


def task_losses(model: PriceAndCategory, representation: Tensor, price: Tensor, category: Tensor) -> list[Tensor]:
    return [
        F.mse_loss(model.price(representation).squeeze(-1), price),
        F.cross_entropy(model.category(representation), category),
    ]


def train(method_name: str, options: dict[str, Any], *, epochs: int, batch_size: int = 64, lr: float = 1e-3,
          num_train: int = 2048, seed: int = 0) -> dict[str, Any]:
    """Train and evaluate; returns the test metrics, the last step's weights and the method (for inspection)."""
    torch.manual_seed(seed)
    model = PriceAndCategory()
    method = methods.create(method_name, list(TASKS), **options)
    optimizer = torch.optim.Adam(
        [{"params": model.parameters()},
         {"params": method.parameters(), "weight_decay": 0.0}],  # 1. UW's log-variances; empty for the others
        lr=lr,
    )
    x, price, category = make_data(num_train, seed=seed)
    for epoch in range(1, epochs + 1):
        epoch_sum, batches = torch.zeros(len(TASKS)), 0
        order = torch.randperm(num_train)
        for start in range(0, num_train, batch_size):
            batch = order[start:start + batch_size]
            representation = model.trunk(x[batch])
            losses = task_losses(model, representation, price[batch], category[batch])
            optimizer.zero_grad(set_to_none=True)
            method.step(losses, shared_parameters=model.trunk.parameters(), representation=representation)  # 2.
            optimizer.step()
            if method.needs_losses_after_step:  # 3. FAMO compares the same batch's losses before and after
                with torch.no_grad():
                    after = task_losses(model, model.trunk(x[batch]), price[batch], category[batch])
                method.after_step(torch.stack(after))
            epoch_sum += torch.stack([loss.detach() for loss in losses])
            batches += 1
        method.end_epoch(epoch_sum / batches)  # 4.
        weights = ", ".join(f"{name} {w:.3g}" for name, w in zip(TASKS, method.last_weights.tolist(), strict=True))
        print(f"epoch {epoch}: mean losses {[round(v, 3) for v in (epoch_sum / batches).tolist()]}; weights {weights}")

    x_test, price_test, category_test = make_data(1024, seed=seed + 1)
    with torch.no_grad():
        representation = model.trunk(x_test)
        rmse = float(F.mse_loss(model.price(representation).squeeze(-1), price_test).sqrt())
        accuracy = float((model.category(representation).argmax(dim=1) == category_test).float().mean())
    print(f"{method_name}: test price RMSE {rmse:.2f} dollars, category accuracy {accuracy:.3f}")
    return {"rmse": rmse, "accuracy": accuracy, "weights": method.last_weights.clone(), "method": method}


def parse_option(text: str) -> tuple[str, Any]:
    """``temperature=2`` → ``("temperature", 2)``; values are Python literals, else strings."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--option takes KEY=VALUE, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="uwso", help="any name of `taskbalance methods`")
    parser.add_argument("--option", type=parse_option, action="append", default=[], metavar="KEY=VALUE",
                        help="a hyper-parameter of the method (repeatable)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--num-train", type=int, default=2048)
    args = parser.parse_args()
    torch.set_num_threads(1)
    try:
        train(args.method, dict(args.option), epochs=args.epochs, num_train=args.num_train)
    except methods.MethodError as error:
        parser.error(str(error))


if __name__ == "__main__":
    main()
