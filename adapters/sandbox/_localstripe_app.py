"""Serve localstripe's aiohttp app on 127.0.0.1 with its state kept in memory.

localstripe's own ``start()`` binds every interface and pickles its store to
``/tmp/localstripe.pickle`` after each write; here the store never touches disk,
so parallel instances cannot see or clobber each other's state. This module is
imported only inside the child process (localstripe is a separate, GPL-licensed
test-time program, never a library of Interlock).
"""

from __future__ import annotations

import logging
import socket

__all__ = ["serve"]


def serve(port: int, *, host: str = "127.0.0.1") -> None:
    """Run localstripe on ``host:port`` until SIGINT or SIGTERM."""
    from aiohttp import web
    from localstripe import resources, server

    # The store calls ``dump_to_disk`` on every write and the app's middleware
    # after every request; an instance attribute shadows the method for both.
    resources.store.dump_to_disk = lambda: None
    resources.store.clear()

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    web.run_app(server.app, sock=sock, access_log=logging.getLogger("aiohttp.access"), print=None)
