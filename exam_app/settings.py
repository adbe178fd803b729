"""Django settings for the reproduction app.

Everything a chaos scenario varies comes from the environment through the
typed readers in exam_app.envconf, so a typo in a value stops the process.
"""

from pathlib import Path

from exam_app import envconf as env

BASE_DIR = Path(__file__).resolve().parent.parent

# Development default only; the stack never faces a network beyond 127.0.0.1.
SECRET_KEY = env.text("DJANGO_SECRET_KEY", "dev-only-insecure-secret-key")
DEBUG = env.flag("DJANGO_DEBUG", False)
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "web"]

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "exam_app.users",
]
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "exam_app.urls"
WSGI_APPLICATION = "exam_app.wsgi.application"
DATABASES = {"default": env.database("DATABASE_URL", BASE_DIR / "db.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"

# --- Celery (read by exam_app/celery.py through the CELERY_ namespace) ---
CELERY_BROKER_URL = env.text("CELERY_BROKER_URL", "redis://localhost:6379/0")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_IGNORE_RESULT = True
# The seed's reproduction: one process per worker, one message prefetched.
CELERY_WORKER_CONCURRENCY = env.integer("CELERY_WORKER_CONCURRENCY", 1, minimum=1)
CELERY_WORKER_PREFETCH_MULTIPLIER = env.integer("CELERY_WORKER_PREFETCH_MULTIPLIER", 1)
CELERY_WORKER_DISABLE_PREFETCH = env.flag("CELERY_WORKER_DISABLE_PREFETCH", False)
CELERY_WORKER_POOL = env.choice("CELERY_WORKER_POOL", "prefork", ("prefork", "solo", "threads"))
# How long billiard waits for a dead pool child's result before WorkerLostError.
CELERY_WORKER_LOST_WAIT = env.seconds("CELERY_WORKER_LOST_WAIT", 10.0)
# Tasks that do not choose for themselves (the side-effect tasks) follow these.
CELERY_TASK_ACKS_LATE = env.flag("CELERY_TASK_ACKS_LATE", False)
CELERY_TASK_REJECT_ON_WORKER_LOST = env.flag("CELERY_TASK_REJECT_ON_WORKER_LOST", False)
# A hard time limit (0: none), and whether a late-ack task that hits it is
# acknowledged (Celery's default) or requeued.
CELERY_TASK_TIME_LIMIT = env.seconds("CELERY_TASK_TIME_LIMIT", 0.0, allow_zero=True) or None
CELERY_TASK_ACKS_ON_TIMEOUT = env.flag("CELERY_TASK_ACKS_ON_TIMEOUT", True)
# Cold shutdown (SIGQUIT) gives running tasks this long first (Celery 5.5+ soft shutdown).
CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT = env.seconds(
    "CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT", 0.0, allow_zero=True
)
# Events, so Flower and the rig see received/started/succeeded.
CELERY_WORKER_SEND_TASK_EVENTS = True
CELERY_TASK_SEND_SENT_EVENT = True
# Redis redelivers an unacked message after visibility_timeout, found by a
# sweep every unacked_restore_interval * unacked_restore_throttle seconds
# (kombu 5.7). Defaults are kombu's; scenarios shorten them.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.seconds("CELERY_BROKER_VISIBILITY_TIMEOUT", 3600.0),
    "unacked_restore_interval": env.seconds("CELERY_BROKER_UNACKED_RESTORE_INTERVAL", 10.0),
    "unacked_restore_throttle": env.integer(
        "CELERY_BROKER_UNACKED_RESTORE_THROTTLE", 10, minimum=1
    ),
    "unacked_mutex_expire": env.seconds("CELERY_BROKER_UNACKED_MUTEX_EXPIRE", 300.0),
}


LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
