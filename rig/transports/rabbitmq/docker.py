"""The RabbitMQ broker as a container of the run (the compose file's rabbitmq
service), with the rig's config and definitions written at each start."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from rig import compose
from rig.backends.base import Exit, free_port
from rig.backends.hosts import DockerHost, Executed, node_name
from rig.errors import BrokerDown, ExecHung
from rig.transports.rabbitmq import node

SERVICE = "rabbitmq"
# An erl_call's exec ends within erl_call's own timeout; the engine gets this more.
EXEC_SLACK_S = 10.0

# The service's command, run by a shell that first writes the node's config
# (from the environment).
_START = """
conf=$RABBITMQ_CONFIG_FILE
mkdir -p "$(dirname "$conf")"
printf '%s' "$RIG_RABBITMQ_CONFIG" > "$conf"
printf '%s' "$RIG_RABBITMQ_DEFINITIONS" > "$(dirname "$conf")/definitions.json"
exec "$@"
"""

# An Erlang expression ($RIG_EXPRESSION) evaluated in the node, as the user the
# node runs as would (its cookie is in that home); erl_call is on PATH in
# Debian's image, under the Erlang tree in the official one.
_EVALUATE = """
erl_call=$(command -v erl_call || echo /usr/local/lib/erlang/lib/erl_interface-*/bin/erl_call)
printf '%s\\n' "$RIG_EXPRESSION" | HOME=/var/lib/rabbitmq $erl_call "$@"
"""


class DockerNode:
    def __init__(self, host: DockerHost, name: str) -> None:
        spec = host.service_spec(SERVICE)
        host.check_image(SERVICE)
        config_file = compose.environment(spec)["RABBITMQ_CONFIG_FILE"]
        definitions_file = f"{config_file.rsplit('/', 1)[0]}/definitions.json"
        self.host = host
        self.service = node_name(SERVICE, name)
        self.container: Any = host.run_container(
            self.service,
            spec["image"],
            command=["sh", "-c", _START, "sh", *spec["command"]],
            environment={
                **compose.environment(spec),
                "RIG_RABBITMQ_CONFIG": node.node_config(str(node.PORT), definitions_file),
                "RIG_RABBITMQ_DEFINITIONS": json.dumps(node.definitions()),
            },
            ports={f"{node.PORT}/tcp": ("127.0.0.1", free_port())},
        )
        port = host.host_port(self.container, node.PORT)
        credentials = f"{node.USER}:{node.USER}"
        self.url = f"amqp://{credentials}@127.0.0.1:{port}/{node.vhost(0)}"
        self.inside_url = f"amqp://{credentials}@{self.service}:{node.PORT}/{node.vhost(0)}"
        host.wait_answering(self.container, lambda: node.answering(self.url))

    def admin(self, expression: str, timeout_s: float = node.ADMIN_TIMEOUT_S) -> str:
        """The expression evaluated in the node (node.erl_call_args); the term's text."""
        command = ["sh", "-c", _EVALUATE, "sh", *node.erl_call_args("rabbit", timeout_s)]
        result = self._exec(command, timeout_s + EXEC_SLACK_S, {"RIG_EXPRESSION": expression})
        return node.reply(result.exit_code, result.output)

    def _exec(
        self, command: list[str], timeout_s: float, env: dict[str, str] | None = None
    ) -> Executed:
        try:
            return self.host.exec(self.container, command, timeout_s, env)
        except ExecHung as error:  # the node did not answer, as far as the rig can tell
            raise BrokerDown(str(error)) from error

    def restart(self, persist: bool, while_down: Callable[[], None]) -> Exit | None:
        """The broker stopped and started again in its container (node.restart_broker)."""
        if not node.restart_broker(self.admin, persist, while_down):
            return None
        self.host.wait_answering(self.container, lambda: node.answering(self.url))
        return Exit(time.time(), "rabbitmq broker stopped and started again")

    def close(self) -> None:
        """The backend removes the run's containers."""
