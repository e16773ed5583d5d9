"""From a :class:`RunConfig` to the objects of a run: the data, the model and the method, before any training."""

from __future__ import annotations

from taskbalance import data as datasets
from taskbalance import methods
from taskbalance import models as model_zoo
from taskbalance.data.base import MultiTaskData
from taskbalance.method import Method
from taskbalance.models.base import MultiTaskModel
from taskbalance.training.config import ConfigError, RunConfig


def build(
    config: RunConfig, data: MultiTaskData | None = None, *, sync_across_ranks: bool = False
) -> tuple[MultiTaskData, MultiTaskModel, Method]:
    """Data (restricted to the config's tasks), model and method of a run, before any training.

    ``sync_across_ranks`` builds the method for a distributed job (every rank computes the global batch's update).
    """
    if data is None:
        try:
            datasets.check_options(config.dataset, config.dataset_options)
        except KeyError as error:
            raise ConfigError(f"dataset: {error.args[0]}") from None
        except datasets.DatasetOptionError as error:
            raise ConfigError(f"dataset_options: {error}") from None
        try:
            data = datasets.create(config.dataset, **config.dataset_options)
        except datasets.DatasetFormatError:
            raise  # a file on disk, not a config value: the message names the path
        except (KeyError, TypeError, ValueError) as error:
            raise ConfigError(f"dataset_options: {error.args[0] if error.args else error}") from None
    if config.tasks:
        try:
            data = data.select(config.tasks)
        except KeyError as error:
            raise ConfigError(f"tasks: {error.args[0]}") from None
    heads = {name: task.head for name, task in data.tasks.items()}
    try:
        model = model_zoo.create(config.model, heads=heads, in_channels=data.input_shape[0], **config.model_options)
    except KeyError as error:
        raise ConfigError(f"model: {error.args[0]}") from None
    except TypeError as error:
        raise ConfigError(f"model_options for {config.model!r}: {error}") from None
    try:
        options = {**config.method_options, **({"sync_across_ranks": True} if sync_across_ranks else {})}
        method = methods.create(config.method, data.tasks, **options)
    except methods.UnknownMethodError as error:
        raise ConfigError(f"method: {error}") from None
    except methods.MethodError as error:
        raise ConfigError(f"method_options: {error}") from None
    return data, model, method
