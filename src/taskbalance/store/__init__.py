"""The durable results store (SQLite) and the optional MLflow mirror."""

from taskbalance.store.run_store import RunStore, StoreError

__all__ = ["RunStore", "StoreError", "mirror_to_mlflow"]


def __getattr__(name: str) -> object:
    # The mirror imports nothing heavy itself, but keep ``import taskbalance.store`` independent of it.
    if name == "mirror_to_mlflow":
        from taskbalance.store.mlflow_mirror import mirror_to_mlflow

        return mirror_to_mlflow
    raise AttributeError(f"module 'taskbalance.store' has no attribute {name!r}")
