"""What a run needs before its crew starts: the target's database (created
and migrated once per target), its extra packages where workers need them,
and the transport's broker (started on first use)."""

from __future__ import annotations

from collections.abc import Callable

from rig.backends.base import SHARED_NODE, Backend, Services
from rig.store import Store
from rig.target import Target

Progress = Callable[[str], None]


class Provisioner:
    def __init__(self, backend: Backend, services: Services) -> None:
        self.backend = backend
        self.services = services
        self._stores: dict[str, Store] = {}  # by target database, each migrated once
        self._brokers: set[tuple[str, str]] = set()  # broker nodes asked for

    def broker(self, transport: str, node: str, progress: Progress) -> str:
        """The transport's broker node's URL; the first time, it starts (RabbitMQ:
        seconds)."""
        if (transport, node) not in self._brokers:
            alone = "" if node == SHARED_NODE else " (the node runs that stop it take in turn)"
            progress(f"starting the {transport} broker{alone}")
            self._brokers.add((transport, node))
        return self.backend.broker_url(transport, node)

    def store(self, target: Target, progress: Progress) -> Store:
        """The target's database, created and migrated on first use, and its
        extra packages where workers need them (built once per content)."""
        if target.requirements:
            progress(f"making {target.requirements} available to the workers")
            self.backend.prepare_project(target.requirements)
        store = self._stores.get(target.database)
        if store is None:
            progress(f"migrating {target.app} into the rig's database")
            store = Store(self.services.database_url, target)
            store.prepare()
            self._stores[target.database] = store
        return store

    def close(self) -> None:
        """Drop the rig's databases: a server the user lent keeps none of them (on
        the rig's own server they go with it anyway)."""
        for store in self._stores.values():
            store.drop()
        self._stores.clear()
