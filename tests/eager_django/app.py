"""A Celery app whose module sets Django up as it is imported, with its own
database: the rig cannot swap the settings any more, and must say so."""

import django
from celery import Celery
from django.conf import settings

settings.configure(
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "/nonexistent/db"}}
)
django.setup()
app = Celery("eager")
