"""The Django settings a user's project runs with under the rig (see rig.agent).

Everything of the user's settings module stands except what names
infrastructure: the databases, the broker, the result backend, the caches and
the mail backend are replaced by the rig's own (rig.agent sets the broker and
result backend on the Celery app itself, which wins over any CELERY_
setting), so nothing ever touches what the user's settings point at.
"""

import os
from importlib import import_module
from urllib.parse import unquote, urlsplit

_user = import_module(os.environ["RIG_USER_SETTINGS"])
globals().update({name: getattr(_user, name) for name in dir(_user) if name.isupper()})


# exam_app/envconf.py reads the same two URL forms for the seed's own stack; this
# module cannot import it, as a user's project runs without exam_app.
def _database(url: str) -> dict[str, object]:
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        # Several worker processes share one file: IMMEDIATE transactions wait for
        # the write lock where deferred ones fail with "database is locked".
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": unquote(parts.path)[1:],
            "OPTIONS": {"timeout": 30, "transaction_mode": "IMMEDIATE"},
        }
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": parts.path.lstrip("/"),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "localhost",
        "PORT": str(parts.port or 5432),
    }


# Every alias the project names (a replica too) is the rig's one database.
DATABASES = {
    alias: _database(os.environ["RIG_DATABASE_URL"])
    for alias in (getattr(_user, "DATABASES", None) or {"default": None})
}
CACHES = {
    alias: {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    for alias in (getattr(_user, "CACHES", None) or {"default": None})
}
# A task that sends mail under the rig sends it nowhere.
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
