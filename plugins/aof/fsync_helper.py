"""The AOF's fsync process for ``appendfsync always``: ``python -I -S fsync_helper.py FD``.

Standard library only (it runs isolated, without site-packages).  It reads requests from the
SOCK_SEQPACKET socket ``FD`` (see :mod:`trioredis.plugins.aof.fsync` for the protocol),
fdatasyncs and answers, and exits when the server closes its end (also when the server is
killed: the kernel closes it then).
"""

from __future__ import annotations

import os
import socket
import struct
import sys
import time

REQUEST = struct.Struct("<cqq")  # kind, generation, position
RESULT = struct.Struct("<qqiq")  # generation, position covered, errno (0: ok), nanoseconds
FD_SPACE = socket.CMSG_SPACE(struct.calcsize("i"))


def receive(sock: socket.socket, flags: int = 0) -> tuple[bytes, list[int]]:
    """One request and the descriptors riding with it (``socket.recv_fds`` drops ``flags``
    before Python 3.12)."""
    data, ancillary, _flags, _address = sock.recvmsg(REQUEST.size, FD_SPACE, flags)
    fds: list[int] = []
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(payload) - len(payload) % 4
            fds += struct.unpack(f"{usable // 4}i", payload[:usable])
    return data, fds


def serve(sock: socket.socket) -> None:
    fd = -1  # our copy of the AOF descriptor of ``generation``
    generation = -1
    while True:
        messages = [receive(sock)]
        # Everything already queued joins this round: one fdatasync covers the highest
        # position asked for the current file.
        while messages[-1][0]:
            try:
                messages.append(receive(sock, socket.MSG_DONTWAIT))
            except BlockingIOError:
                break
        target = -1
        for data, fds in messages:
            if not data:
                return  # the server closed its end
            kind, message_generation, position = REQUEST.unpack(data)
            if kind == b"Q":
                return
            if kind == b"F":  # a new file: its descriptor rides along
                if fd >= 0:
                    os.close(fd)
                fd, generation, target = fds[0], message_generation, -1
            elif kind == b"X" and message_generation == generation:  # forget that file
                os.close(fd)
                fd, generation, target = -1, -1, -1
            elif kind == b"S" and message_generation == generation:
                target = max(target, position)
            else:
                for extra in fds:
                    os.close(extra)
        if target < 0 or fd < 0:
            continue
        error = 0
        started = time.monotonic_ns()
        try:
            os.fdatasync(fd)
        except OSError as failure:
            error = failure.errno or 5
        sock.send(RESULT.pack(generation, target, error, time.monotonic_ns() - started))


def main() -> None:
    sock = socket.socket(fileno=int(sys.argv[1]))
    try:
        serve(sock)
    except (BrokenPipeError, ConnectionResetError, KeyboardInterrupt):
        pass


if __name__ == "__main__":
    main()
