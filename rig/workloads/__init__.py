"""Workloads: what a run sends and how, one module each, listed in
rig.workloads.registry as faults are (the `workload` setting's choices come
from there).

A workload module declares NAME, SUMMARY and

    send(run, index)       send the index-th unit of work (0 ... settings.tasks - 1)
                           through run.crew, and add its SENT event to
                           run.history (task id, task, business key)

A plan (rig.plans) decides when each unit goes out: all at once for a
catalog scenario, spread over the run for explore. The next kinds (countdown
tasks, retries, chains, publishing inside a transaction) are modules here.
"""
