"""The worker environment contract: what the controller sets for every
process it starts for a project (the workers, the probe, the effects), read
there by the agent (rig.agent), the checkpoints and the project's settings
wrapper. One name each, here; no module spells one out."""

from __future__ import annotations

BROKER_URL = "RIG_BROKER_URL"  # the crew's corner of the rig's broker
CONTROL_URL = "RIG_CONTROL_URL"  # the crew's database of the control store
DATABASE_URL = "RIG_DATABASE_URL"  # the target's database on the rig's server
PARK_SECONDS = "RIG_PARK_SECONDS"  # how long a checkpoint holds a task unless released
APP = "RIG_APP"  # MODULE[:ATTR], as `celery -A` takes it
PROJECT_DIR = "RIG_PROJECT_DIR"  # put first on sys.path
CONF = "RIG_CONF"  # JSON: the Celery settings the rig overrides
GIVEN_SETTINGS = "RIG_GIVEN_SETTINGS"  # DJANGO_SETTINGS_MODULE as --env gave it
USER_SETTINGS = "RIG_USER_SETTINGS"  # the user's Django settings module, found at import
RESULTS = "RIG_RESULTS"  # "redis": the app stores results in its corner of the control store
SINK = "RIG_SINK"  # JSON: how the HTTP sink answers (rig.outbound.Sink)
# The rig's own services: the only places a TCP connection may go (rig.outbound).
SERVICE_URLS = (BROKER_URL, CONTROL_URL, DATABASE_URL)

# What the controller reads back from a process it started.
MARK = "RIG-JSON "  # starts the one line of a probe's, effects' or producer's output it reads
PARK_S = 20.0  # PARK_SECONDS unless set: an armed checkpoint parks at most this long
