"""Two process-wide latency fixes for Streamlit 1.67: Nagle's algorithm off on the server's sockets, and the
start-up heap kept out of the cyclic collector's sight. Neither touches Streamlit's code; both act on this
process's own sockets and heap. The measurements behind them are in the README ("Performance").

Why not ``runner.postScriptGC = false`` instead of freezing: that config option does remove the full
collection Streamlit runs after every script run, but then the reference cycles each run leaves behind
wait for Python's own full collection, which comes rarely with a large heap and walks all of it (the same
stall, later): the server's memory grew with every rerun where, with the collection kept and the start-up
heap frozen, it stays flat, at the same streaming rate under load.
"""

from __future__ import annotations

import gc
import os
import socket

_FD_DIRS = ("/proc/self/fd", "/dev/fd")  # Linux, then macOS and the BSDs


def disable_nagle(port: int) -> int:
    """Turn on TCP_NODELAY for this process's TCP sockets on local `port`: the server's listening socket
    (Linux hands the option on to every connection it accepts later) and the connections already accepted.
    Returns how many sockets it changed.

    Why: Streamlit binds its listening socket itself, as ``socket.socket(family)``, so the connections it
    accepts report protocol 0, and asyncio only disables Nagle's algorithm for sockets that report
    IPPROTO_TCP. With Nagle on, a small websocket message sent while an earlier one is unacknowledged waits
    for the browser's delayed ACK (up to 40 ms on Linux), which delays each reply's first text and bunches
    the updates that follow."""
    fd_dir = next((d for d in _FD_DIRS if os.path.isdir(d)), None)
    if fd_dir is None:
        return 0
    # Twice: a connection accepted while the first pass ran, before the listener had the option, is found by
    # the second; one accepted after the first pass inherits it.
    return sum(_set_nodelay_on_port(fd_dir, port) for _ in range(2))


def _set_nodelay_on_port(fd_dir: str, port: int) -> int:
    changed = 0
    for name in os.listdir(fd_dir):
        try:
            copy = os.dup(int(name))  # a duplicate: closing it leaves the original open
        except (ValueError, OSError):
            continue  # not a number, or already closed
        try:
            sock = socket.socket(fileno=copy)
        except OSError:  # not a socket
            os.close(copy)
            continue
        try:
            if (sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM
                    and sock.getsockname()[1] == port
                    and not sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                changed += 1
        except OSError:
            pass
        finally:
            sock.close()
    return changed


def freeze_startup_heap() -> None:
    """Move every object alive now out of the cyclic garbage collector's sight.

    Why: Streamlit runs a full collection after every script run (``runner.postScriptGC``), with the GIL
    held. Over the objects of the start-up imports (both SDKs, pandas, the token encodings) that is long
    enough to stall every other session's stream. Those objects live as long as the process, so they are
    frozen once, after the imports; later collections walk only what sessions created since. Objects of the
    sessions alive at that moment are frozen too: any reference cycles among them are never freed, a bounded
    cost paid once per process."""
    gc.collect()
    gc.freeze()
