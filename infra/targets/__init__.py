"""Deployment targets behind one small interface (``infra/targets/base.py``).

``target_for`` is the only place that maps a name to a target; commands ask it for the
target a spec names (``deployment.target``) or the one given with ``--target``.
"""

from __future__ import annotations

from collections.abc import Callable

from infra.errors import KitError
from infra.targets.base import Target

TARGET_NAMES = ("local", "vm", "kubernetes", "aws")


def target_for(name: str, env: dict[str, str]) -> Target:
    """The target called ``name``, configured from the environment the entry point read."""
    from infra.targets.aws import AwsTarget
    from infra.targets.kubernetes import KubernetesTarget
    from infra.targets.local import LocalTarget
    from infra.targets.vm import VmTarget

    factories: dict[str, Callable[[dict[str, str]], Target]] = {
        "local": LocalTarget,
        "vm": VmTarget,
        "kubernetes": KubernetesTarget,
        "aws": AwsTarget,
    }
    if name not in factories:
        raise KitError(f"unknown target {name!r}; known: {', '.join(TARGET_NAMES)}")
    return factories[name](env)
