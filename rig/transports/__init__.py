"""Transports: the brokers a run can use, one package each, as faults are
modules. A transport package (rig/transports/<name>/) declares NAME, SUMMARY,
Parameters (its settings, part of rig.settings.Settings) and

    crew_url(url, slot)        a crew's own corner of the broker (a Redis
                               database, a RabbitMQ virtual host)
    crew_setup(settings)       what that corner is set up with before the
                               crew's workers start (queue type, policies)
    celery_settings(settings)  what the workers' app needs for it
    unsupported(settings)      a setting it cannot honour, and why (or None)
    redelivery_wait_s(settings) how long a redelivery may take beyond the
                               settle wait (an old kombu's fixed sweep)
    describe(settings)         the report's phrase for what it was given
    node_wide(settings)        a setting that changes the whole broker ("" if
                               none): such a run takes a broker node of its
                               own (Settings.broker_node)
    Broker(url, admin)         reset(setup), pending_messages(),
                               ready_messages(), consumers_waiting(),
                               take_back(), put_back(taken), dead_lettered(),
                               close(): the runner's side, to start a crew
                               clean, tell when a run drained, and see a
                               message handed to a waiting worker
    on_docker(host, node), on_local(host, node)
                               a broker node started on a backend, a BrokerNode
                               (rig.backends.hosts): its URLs, its admin interface
                               (`admin` above), its restart; `node` names it
                               beside the transport's others (rig.backends.base
                               .SHARED_NODE, ALONE_NODE)

A backend keeps only primitives (spawn, exec, signal, network); adding a
broker is adding a package here and a line below (and its Parameters to
rig.settings.Settings).
"""

from __future__ import annotations

from types import ModuleType

from rig.backends.base import WorkerSpec, agent_environment
from rig.transports import rabbitmq, redis

TRANSPORTS: dict[str, ModuleType] = {module.NAME: module for module in (redis, rabbitmq)}
# A scenario's label names its transport unless it is this one (s, s@rabbitmq).
DEFAULT_TRANSPORT = next(iter(TRANSPORTS))


def worker_environment(
    spec: WorkerSpec, broker_url: str, control_url: str, database_url: str
) -> dict[str, str]:
    """A worker's agent environment (rig.backends.base.agent_environment) on
    its crew's corner of its transport's broker (`broker_url`: the broker as
    the worker reaches it), for either backend."""
    crew_broker_url = TRANSPORTS[spec.transport].crew_url(broker_url, spec.broker_db)
    return agent_environment(spec, crew_broker_url, control_url, database_url)
