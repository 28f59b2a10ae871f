"""Child processes and local servers: free ports, readiness waits, clean stops.

Interlock starts its dashboard with these; the demo landscape and the tests start
the real systems (Tryton, localstripe, Tansu, Alertmanager) with them.
"""

from ._process import ManagedProcess, ManagedServer, free_port, wait_for_http

__all__ = ["ManagedProcess", "ManagedServer", "free_port", "wait_for_http"]
