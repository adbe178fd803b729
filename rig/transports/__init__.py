"""Transports: the brokers a run can use, one module each, as faults are.

A transport module declares NAME, SUMMARY, `crew_url(url, slot)` (a crew's own
corner of the broker: a Redis database, a RabbitMQ virtual host), `celery_settings(settings)`
(what the workers' app needs for it), `unsupported(settings)` (a setting it
cannot honour, and why) and a `Broker` class (reset, pending_messages, close)
the runner uses to start a crew clean and to tell when a run has drained.
Adding a broker is adding a module here and its service to the backends.
"""

from __future__ import annotations

from types import ModuleType

from rig.transports import rabbitmq, redis

TRANSPORTS: dict[str, ModuleType] = {module.NAME: module for module in (redis, rabbitmq)}
