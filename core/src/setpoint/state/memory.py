"""``context.memory`` backed by the state store: a driver's values survive restarts and become
durable in the same transaction as what the reconciler records (inventory after an apply, the
status at the end of a run)."""

from __future__ import annotations

from setpoint.api import TargetMemory
from setpoint.state.store import StateStore


class StoredMemory(TargetMemory):
    def __init__(self, store: StateStore, target: str, values: dict[str, str] | None = None) -> None:
        """``values``: the target's stored values when the caller read them already
        (:meth:`StateStore.memories`, one query for every target of an engine)."""
        super().__init__()
        self._store = store
        self._target = target
        self._values.update(store.memory(target) if values is None else values)

    def discard_pending(self) -> None:
        with self._lock:
            self._pending = {}
            self._values = self._store.memory(self._target)

    def flush(self) -> None:
        """Write pending values; call it inside the store's ``batch()`` to make them part of that commit."""
        pending = self.take_pending()
        try:
            self._store.write_memory(self._target, pending)
        except BaseException:
            with self._lock:  # not durable: keep them for the next flush
                self._pending = {**pending, **self._pending}
            raise
