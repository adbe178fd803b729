"""Transports: the brokers a run can use, one module each, as faults are.

A transport module declares NAME, SUMMARY and

    crew_url(url, slot)        a crew's own corner of the broker (a Redis
                               database, a RabbitMQ virtual host)
    crew_setup(settings)       what that corner is set up with before the
                               crew's workers start (queue type, policies)
    celery_settings(settings)  what the workers' app needs for it
    unsupported(settings)      a setting it cannot honour, and why (or None)
    redelivery_wait_s(settings) how long a redelivery may take beyond the
                               settle wait (an old kombu's fixed sweep)
    Broker(url, admin)         reset(setup), pending_messages(),
                               ready_messages(), consumers_waiting(),
                               take_back(), put_back(taken), dead_lettered(),
                               close(): the runner's side, to start a crew
                               clean, tell when a run drained, and see a
                               message handed to a waiting worker

`admin` runs the broker's admin tool where the broker runs (the backend
knows where). Adding a broker is adding a module here and its service to the
backends (Backend.broker_url, broker_admin, restart_broker).
"""

from __future__ import annotations

from types import ModuleType

from rig.transports import rabbitmq, redis

TRANSPORTS: dict[str, ModuleType] = {module.NAME: module for module in (redis, rabbitmq)}
