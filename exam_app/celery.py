"""The Celery app, wired the Django way: settings under the CELERY_ namespace."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exam_app.settings")

app = Celery("exam_app")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
