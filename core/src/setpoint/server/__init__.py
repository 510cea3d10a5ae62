"""The HTTP server inside ``setpoint run``: webhooks, /metrics, health and the status API.

Importing this package is cheap; the web stack loads with :mod:`setpoint.server.runtime`, whose
:func:`~setpoint.server.runtime.start_operations` the ``run`` command calls.
"""
