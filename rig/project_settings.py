"""The Django settings a user's project runs with under the rig (see rig.agent).

Everything of the user's settings module stands except what names
infrastructure: the databases, the broker, the result backend, the caches and
the mail backend are replaced by the rig's own (rig.agent sets the broker and
result backend on the Celery app itself under every name Celery reads them
by, see rig.isolation), so nothing ever touches what the user's settings
point at; rig.isolation checks the result before anything connects.
"""

import os
from importlib import import_module

from rig import contract
from rig.isolation import LOCAL_CACHE, LOCAL_MAIL, django_database

_user = import_module(os.environ[contract.USER_SETTINGS])
globals().update({name: getattr(_user, name) for name in dir(_user) if name.isupper()})


# Every alias the project names (a replica too) is the rig's one database.
DATABASES = {
    alias: django_database(os.environ[contract.DATABASE_URL])
    for alias in (getattr(_user, "DATABASES", None) or {"default": None})
}
CACHES = {
    alias: {"BACKEND": LOCAL_CACHE}
    for alias in (getattr(_user, "CACHES", None) or {"default": None})
}
# A task that sends mail under the rig sends it nowhere.
EMAIL_BACKEND = LOCAL_MAIL
