"""Local stand-ins and launchers for the demo landscape and the tests."""

from ._process import ManagedProcess, free_port, wait_for_http

__all__ = ["ManagedProcess", "free_port", "wait_for_http"]
