"""The Celery chaos and idempotency rig. In your own code, `from rig import
checkpoint; checkpoint("name")` names a point the rig can fault (--at name);
it does nothing unless a run armed it."""

from rig.checkpoints import checkpoint

__all__ = ["checkpoint"]
