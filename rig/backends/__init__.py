"""Backends run the broker, the database and the workers, and kill them.

Two implement the same small protocol (rig.backends.base.Backend): docker
(containers through the Docker SDK) and local (processes on this machine).
"""
