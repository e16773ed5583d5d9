"""The durable results store (SQLite) and the optional MLflow mirror (MLflow itself is imported only when used)."""

from taskbalance.store.mlflow_mirror import MlflowUnavailableError, mirror_to_mlflow
from taskbalance.store.run_store import RunStore, StoreError

__all__ = ["MlflowUnavailableError", "RunStore", "StoreError", "mirror_to_mlflow"]
