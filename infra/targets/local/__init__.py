"""The local target: the embedded default, a whole federation on one machine's loopback."""

from infra.targets.local.target import LocalTarget

__all__ = ["LocalTarget"]
