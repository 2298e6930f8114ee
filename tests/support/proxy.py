"""A TCP proxy of the test's own between Kafka clients and the broker, to cut their connections for real.

The broker advertises the proxy's address (``Tansu(advertised_port=...)``), so every connection a
client makes, bootstrap and broker alike, goes through it. ``cut`` closes every connection open
now (clients see their broker disconnect mid-request and reconnect); ``refuse`` stops listening
(connections are refused, as to a broker that is down) until ``accept``. Imports nothing from
the product.
"""

from __future__ import annotations

import socket
import threading
from types import TracebackType


class Proxy:
    def __init__(self, target_port: int, port: int) -> None:
        self.port = port
        self._target = ("127.0.0.1", target_port)
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._accepter = threading.Thread()
        self.cuts = 0

    def __enter__(self) -> Proxy:
        self.accept()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.refuse()

    def accept(self) -> None:
        """Listen (again) and forward every connection to the target."""
        listener = socket.create_server(("127.0.0.1", self.port))
        self._listener = listener
        self._accepter = threading.Thread(target=self._accepting, args=(listener,), daemon=True, name=f"proxy-{self.port}")
        self._accepter.start()

    def refuse(self) -> None:
        """Stop listening and cut what is open: the broker looks down."""
        if self._listener is not None:
            _close(self._listener)  # the shutdown wakes the thread in accept(), which holds the port until it returns
            self._accepter.join(10)
            self._listener = None
        self.cut()

    def cut(self) -> int:
        """Close every connection open now; returns how many client connections were cut."""
        with self._lock:
            sockets, self._open = self._open, set()
        for sock in sockets:
            _close(sock)
        self.cuts += 1
        return len(sockets) // 2

    def _accepting(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # refused from now on
            try:
                upstream = socket.create_connection(self._target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open.discard(source)
                self._open.discard(sink)
            _close(source)
            _close(sink)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
