"""An app whose settings read a variable at import, as django-environ's do:
without it the probe fails, and says which flag gives it."""

import os

from celery import Celery

app = Celery("needs_env", broker=os.environ["SHOP_BROKER"])


@app.task(name="needs_env.ping")
def ping() -> str:
    return "pong"
