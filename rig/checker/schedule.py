"""A fault schedule as text, SECONDS:FAULT@POINT,... (explore's steps): what
explore prints and replays, and what the checker reads back from a stored
run to count the faults that landed."""

from __future__ import annotations

from dataclasses import dataclass

from rig.errors import BadInput


@dataclass(frozen=True)
class Step:
    at_s: float
    fault: str
    point: str

    def __str__(self) -> str:
        return f"{self.at_s:g}:{self.fault}@{self.point}"


def parse_schedule(text: str) -> list[Step]:
    steps = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            at, rest = part.split(":", 1)
            fault, point = rest.split("@", 1)
            steps.append(Step(float(at), fault, point))
        except ValueError:
            raise BadInput(f"schedule step {part!r}: expected SECONDS:FAULT@POINT") from None
    return sorted(steps, key=lambda step: step.at_s)


def schedule_text(steps: list[Step]) -> str:
    return ",".join(str(step) for step in steps)
