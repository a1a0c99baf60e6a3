"""Loopback sockets for the local servers: bound up front so a busy port fails before anything starts."""

from __future__ import annotations

import errno
import ipaddress
import socket

from textclf.errors import UserError


def check_loopback(host: str) -> None:
    """Refuse non-loopback addresses: the local stack has no authentication at all."""
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError as exc:
        raise UserError(f"--host {host!r} is not an IP address; use 127.0.0.1") from exc
    if not loopback:
        raise UserError(
            f"--host {host} is not a loopback address: the local stack has no authentication, "
            "so it only listens on 127.0.0.1 / ::1"
        )


def bind_socket(host: str, port: int, *, what: str, flag: str) -> socket.socket:
    """A listening TCP socket on ``host:port``; a busy port raises one clear UserError line.

    The socket is handed to uvicorn (``Server.run(sockets=[...])``), so there is no window
    between this check and the server's own bind in which another process could take the port.
    """
    check_loopback(host)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    # SO_REUSEADDR lets a restarted stack reuse a port in TIME_WAIT; on Linux it does not
    # allow two listeners on one port, so a port really in use still fails below.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno in (errno.EADDRINUSE, errno.EACCES):
            reason = "is already in use" if exc.errno == errno.EADDRINUSE else "needs privileges"
            raise UserError(
                f"{what} port {host}:{port} {reason}; stop what holds it or choose another with {flag}"
            ) from exc
        raise UserError(f"cannot listen on {host}:{port} for the {what}: {exc.strerror}") from exc
    sock.set_inheritable(False)
    return sock


def inherited_socket(fd: int, *, flag: str) -> socket.socket:
    """The listening loopback socket a parent process bound and handed over as file descriptor
    ``fd`` (``subprocess.Popen(pass_fds=...)``): the parent knows the port before the child starts,
    and no other process can take it in between, as it could after a find-then-bind."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise UserError(f"{flag} {fd}: not an open socket ({exc.strerror})") from exc
    if sock.type != socket.SOCK_STREAM or sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) != 1:
        sock.detach()
        raise UserError(f"{flag} {fd}: not a listening TCP socket")
    check_loopback(str(sock.getsockname()[0]))
    sock.set_inheritable(False)
    return sock
