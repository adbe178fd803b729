"""An app module that builds its result backend as it loads: whatever settings
the rig gives afterwards, that backend object points at the project's Redis,
so every process of the rig must refuse to run it."""

from celery import Celery

app = Celery("cached", broker="redis://127.0.0.1:6399/0", backend="redis://127.0.0.1:6399/1")
app.backend  # noqa: B018 - built now, cached on the app


@app.task(name="cached.add")
def add(x: int, y: int) -> int:
    return x + y
