"""The process-wide latency fixes in server/tuning.py, on real sockets and the real collector."""

from __future__ import annotations

import gc
import os
import socket
import sys

import pytest

from server import tuning


def nodelay(sock: socket.socket) -> bool:
    return bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))


@pytest.fixture
def listener():
    """A listening socket made the way Streamlit 1.67 makes its own: `socket.socket(family)`, protocol 0."""
    sock = socket.socket(socket.AF_INET)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock
    sock.close()


def test_connections_accepted_by_a_protocol_0_listener_start_with_nagle_on(listener):
    # The premise of the fix: without it, the server's connections keep Nagle's algorithm.
    client = socket.create_connection(listener.getsockname())
    accepted, _ = listener.accept()
    with client, accepted:
        assert accepted.proto == 0
        assert not nodelay(accepted)


def test_disable_nagle_covers_the_listener_and_connections_it_already_accepted(listener):
    client = socket.create_connection(listener.getsockname())
    accepted, _ = listener.accept()
    with client, accepted:
        changed = tuning.disable_nagle(listener.getsockname()[1])
        assert nodelay(listener) and nodelay(accepted)
        assert changed == 2
        assert tuning.disable_nagle(listener.getsockname()[1]) == 0  # nothing left to change


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inheriting TCP_NODELAY on accept is Linux's")
def test_connections_accepted_after_disable_nagle_inherit_it(listener):
    tuning.disable_nagle(listener.getsockname()[1])
    client = socket.create_connection(listener.getsockname())
    accepted, _ = listener.accept()
    with client, accepted:
        assert nodelay(accepted)


def test_disable_nagle_covers_a_dual_stack_listener_and_its_ipv4_connections():
    # Streamlit's default bind when server.address is unset: "::" with IPV6_V6ONLY off.
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    listener = socket.socket(socket.AF_INET6)
    listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    listener.bind(("::", 0))
    listener.listen()
    port = listener.getsockname()[1]
    with listener:
        early = socket.create_connection(("127.0.0.1", port))
        accepted_early, _ = listener.accept()
        tuning.disable_nagle(port)
        late = socket.create_connection(("127.0.0.1", port))
        accepted_late, _ = listener.accept()
        with early, accepted_early, late, accepted_late:
            assert nodelay(listener) and nodelay(accepted_early)
            if sys.platform.startswith("linux"):
                assert nodelay(accepted_late)


def test_disable_nagle_leaves_sockets_on_other_ports_alone(listener):
    other = socket.socket(socket.AF_INET)
    other.bind(("127.0.0.1", 0))
    other.listen()
    with other:
        tuning.disable_nagle(listener.getsockname()[1])
        assert not nodelay(other)


def test_disable_nagle_keeps_the_original_sockets_open(listener):
    client = socket.create_connection(listener.getsockname())
    accepted, _ = listener.accept()
    with client, accepted:
        tuning.disable_nagle(listener.getsockname()[1])
        client.sendall(b"still open")
        assert accepted.recv(100) == b"still open"


def test_freeze_startup_heap_moves_live_objects_out_of_the_collectors_sight():
    try:
        tuning.freeze_startup_heap()
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_disable_nagle_leaves_no_file_descriptor_behind(listener, tmp_path):
    fd_dir = next(d for d in tuning._FD_DIRS if os.path.isdir(d))
    with open(tmp_path / "not-a-socket", "w"):  # a descriptor that is not a socket
        before = len(os.listdir(fd_dir))
        tuning.disable_nagle(listener.getsockname()[1])
        assert len(os.listdir(fd_dir)) == before
