"""Methods, datasets, models and tasks of your own, for the ``taskbalance`` command and every process it starts.

A plugin is a Python module whose import registers entries with the registries' decorators
(``@WEIGHTINGS.register("mine")``, ``@DATASETS.register("mydata")``, …; docs/architecture.md shows each kind). The
registries import the plugins the first time one of them is searched, in every process: the command's, the local
pool's workers and the ranks of a multi-process run, so ``taskbalance bench --methods mine --dataset mydata`` works
with no change to taskbalance. Two ways to name them:

* an entry point in the group ``taskbalance.plugins`` of an installed package (its value is the module), e.g. in
  that package's ``pyproject.toml``::

      [project.entry-points."taskbalance.plugins"]
      mylab = "mylab.taskbalance_plugin"

  It is found wherever the package is installed (on a Ray cluster, install it on every node);
* the environment variable ``TASKBALANCE_PLUGINS``, module names separated by commas (``mylab.methods,mylab.data``),
  for modules on ``sys.path`` that are not packaged; it reaches the processes started from the one that has it.

A plugin that cannot be imported, or that registers a name already taken, is a :class:`PluginError` naming the
plugin and where it was named, the first time a registry is searched.

Example:
    >>> import os
    >>> os.environ["TASKBALANCE_PLUGINS"] = "mylab.methods, mylab.data"
    >>> configured_plugins()[-2:]
    [('mylab.methods', 'TASKBALANCE_PLUGINS'), ('mylab.data', 'TASKBALANCE_PLUGINS')]
    >>> del os.environ["TASKBALANCE_PLUGINS"]
"""

from __future__ import annotations

import importlib
import os
from importlib.metadata import entry_points

ENTRY_POINT_GROUP = "taskbalance.plugins"
ENVIRONMENT_VARIABLE = "TASKBALANCE_PLUGINS"

_loaded: list[str] = []
_searched = False


class PluginError(ImportError):
    """A plugin could not be imported or registered; the message names it and where it was named."""


def configured_plugins() -> list[tuple[str, str]]:
    """``(module, where it was named)`` of every configured plugin: entry points first, then the variable's."""
    plugins = [(point.value, f"entry point {point.name!r} of group {ENTRY_POINT_GROUP!r}")
               for point in entry_points(group=ENTRY_POINT_GROUP)]
    named = os.environ.get(ENVIRONMENT_VARIABLE, "")
    plugins += [(name.strip(), ENVIRONMENT_VARIABLE) for name in named.split(",") if name.strip()]
    return plugins


def load_plugins() -> list[str]:
    """Import the configured plugins, once per process; return those imported by this call.

    Raises:
        PluginError: a plugin's import failed, or it registered a name that is already taken.
    """
    global _searched
    if _searched:
        return []
    # Set first: a plugin that searches a registry while it is imported must not import the plugins again.
    _searched = True
    imported = []
    for name, origin in configured_plugins():
        target = name.split(":", 1)[0]  # an entry point may name an attribute; importing its module registers
        if target in _loaded:
            continue
        try:
            importlib.import_module(target)
        except Exception as error:  # whatever the plugin raised while it was imported
            raise PluginError(f"plugin {target!r} ({origin}) could not be imported: "
                              f"{type(error).__name__}: {error}") from error
        _loaded.append(target)
        imported.append(target)
    return imported


def loaded_plugins() -> list[str]:
    """The plugin modules imported so far in this process."""
    return list(_loaded)
