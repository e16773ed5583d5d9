"""UW and IMTL-L learn weights from the losses: a loss < 0 is refused by name; a UW state loads into the same forms."""

import pytest
import torch

from taskbalance.weighting import DWA, IMTLL, UW


@pytest.mark.parametrize(
    ("cls", "why"), [(UW, "UW learns each task's weight"), (IMTLL, "IMTLL learns each task's scale")]
)
def test_a_negative_loss_is_refused_with_the_reason_and_zero_is_accepted(cls: type, why: str) -> None:
    method = cls(2, task_names=["seg", "depth"])
    with pytest.raises(ValueError, match=rf"task 1 \('depth'\) is -0.5; {why}.*must be ≥ 0"):
        method(torch.tensor([1.0, -0.5]))
    # 0: a segmentation batch whose every pixel is ignored has nothing to learn, not a broken loss.
    assert torch.isfinite(method(torch.tensor([0.0, 0.5])))


def test_dwa_names_what_it_divides_by() -> None:
    method = DWA(2)
    method.end_epoch(torch.tensor([1.0, 1.0]))
    with pytest.raises(ValueError, match=r"DWA divides by each task's epoch-mean loss, so every loss must be > 0"):
        method.end_epoch(torch.tensor([0.0, 1.0]))


def test_uw_refuses_the_state_of_a_uw_with_other_likelihood_forms() -> None:
    classification = UW(2, kinds=["classification", "classification"])
    regression = UW(2)
    with pytest.raises(ValueError, match=r"kinds \['classification', 'classification'\], this one has kinds "
                                         r"\['regression', 'regression'\]"):
        regression.load_state_dict(classification.state_dict())
    UW(2).load_state_dict(regression.state_dict())  # the same forms load
