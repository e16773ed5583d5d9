"""docs/models.md says what the code does: head counts per dataset, the DeepLab parts it says match LibMTL."""

from __future__ import annotations

import re
from pathlib import Path

from torch import nn

from taskbalance.data.celeba_files import CELEBA_ATTRIBUTES
from taskbalance.data.cityscapes import cityscapes_tasks
from taskbalance.data.nyuv2 import nyuv2_tasks
from taskbalance.models import MODELS
from taskbalance.types import HeadSpec

DOCS = Path(__file__).parents[2] / "docs" / "models.md"


def test_every_dataset_head_count_in_the_models_docs_is_the_dataset_s_task_count() -> None:
    tasks = {"NYUv2": len(nyuv2_tasks()), "Cityscapes": len(cityscapes_tasks()), "CelebA": len(CELEBA_ATTRIBUTES)}
    assert tasks == {"NYUv2": 3, "Cityscapes": 2, "CelebA": 40}
    labels = re.findall(r"\((NYUv2|Cityscapes|CelebA), (\d+) heads\)", DOCS.read_text())
    assert labels  # the tables are still there
    wrong = [f"{dataset}, {heads} heads" for dataset, heads in labels if int(heads) != tasks[dataset]]
    assert not wrong, wrong


def test_the_parts_said_to_match_libmtl_do() -> None:
    # LibMTL's resnet_dilated(dilate_scale=8): every stride of layer3/layer4 removed; a strided 3×3 conv gets half
    # the stage's dilation, the others all of it (2 in layer3, 4 in layer4); ASPP rates (12, 24, 36) on layer4.
    model = MODELS.create("deeplabv3plus", heads={"depth": HeadSpec(1, dense=True)})
    trunk = model.encoder.trunk
    for stage, dilation in ((trunk.layer3, 2), (trunk.layer4, 4)):
        convs = [block.conv2 for block in stage]
        assert [c.dilation[0] for c in convs] == [dilation // 2] + [dilation] * (len(convs) - 1)
        assert all(m.stride == (1, 1) for m in stage.modules() if isinstance(m, nn.Conv2d))
    aspp = model.heads["depth"].aspp
    assert aspp.rates == (12, 24, 36)
    assert aspp.project[0].in_channels == 1280 and aspp.project[0].out_channels == 256
    assert not any(isinstance(m, nn.Dropout) for m in model.modules())  # the difference the docs name
