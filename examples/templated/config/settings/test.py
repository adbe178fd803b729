from .base import *  # noqa: F403

SECRET_KEY = "test-not-a-secret"
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
