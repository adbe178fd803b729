"""Settings for the shop example.

The database and broker below name hosts that do not exist, on purpose. The rig never
connects to these: it brings its own broker and database, migrates this project into
that database and points the workers at them.
"""

SECRET_KEY = "dev-only-not-a-secret"
DEBUG = True

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "payments",
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": "db.shop.invalid",
        "PORT": 5432,
        "NAME": "shop",
        "USER": "shop",
        "PASSWORD": "shop",
    }
}

USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CELERY_BROKER_URL = "redis://broker.shop.invalid:6379/0"
CELERY_RESULT_BACKEND = "redis://broker.shop.invalid:6379/1"
# The team's own choice: acknowledge a task only after it has run, so a worker that
# dies mid-task gets its message redelivered instead of dropped.
CELERY_TASK_ACKS_LATE = True
