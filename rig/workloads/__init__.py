"""Workloads: what a run sends and how, one module each, listed in
rig.workloads.registry as faults are (the `workload` setting's choices come
from there).

A workload module declares NAME, SUMMARY and

    send(run, index)       send the index-th unit of work (0 ... settings.tasks - 1)
                           through run.crew (or a producer, run.start_producer),
                           and add its SENT event to run.history (task id, task,
                           business key)

and optionally Parameters (its settings, a base of rig.settings.Settings),
validate(settings), describe(settings) (the report's phrase), POINTS (the
checkpoints its own code passes) and BUILDS_CALLS (False: it sends no call
built from --kwargs and --args, as beat does).

Today: keyed, countdown (ETA messages), producer (Django code that sends
inside a transaction or on its commit), chain, group, chord, and beat (celery
beat itself sends, from its schedule; rig.workloads.beat).

A plan (rig.plans) decides when each unit goes out: all at once for a
catalog scenario, spread over the run for explore.
"""
