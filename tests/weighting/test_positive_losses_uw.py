"""UW and IMTL-L learn a weight from each loss: a loss ≤ 0 has no optimum, so it is refused, naming the task."""

import pytest
import torch

from taskbalance.weighting import DWA, IMTLL, UW


@pytest.mark.parametrize("value", [0.0, -0.5])
@pytest.mark.parametrize(
    ("cls", "why"), [(UW, "UW learns each task's weight"), (IMTLL, "IMTLL learns each task's scale")]
)
def test_a_loss_of_at_most_zero_is_refused_with_the_reason(cls: type, why: str, value: float) -> None:
    method = cls(2, task_names=["seg", "depth"])
    with pytest.raises(ValueError, match=rf"task 1 \('depth'\) is {value}; {why}.*must be > 0"):
        method(torch.tensor([1.0, value]))
    method(torch.tensor([1.0, 0.5]))  # positive losses pass


def test_dwa_names_what_it_divides_by() -> None:
    method = DWA(2)
    method.end_epoch(torch.tensor([1.0, 1.0]))
    with pytest.raises(ValueError, match=r"DWA divides by each task's epoch-mean loss, so every loss must be > 0"):
        method.end_epoch(torch.tensor([0.0, 1.0]))
