"""The first program of a walled app's unit (netwall.py): it opens the way in to the app's
port from inside the app's own network namespace, then becomes the app.

    python -I portshim.py <socket path> <port> <systemd-socket-proxyd> -- <app argv...>

It listens on a Unix socket in the app's http folder, hands that socket to
systemd-socket-proxyd (socket activation: LISTEN_FDS) in a child, which forwards each
connection to 127.0.0.1:<port> in the namespace, and then execs the app in its own PID, so
the unit's MainPID is the app. A child rather than a second unit: processes of one unit
started apart get user namespaces of their own under a user manager (systemd 252), and may
not join each other's network namespace; a fork shares both.

Standard library only, run with -I: it imports nothing of HomeHelper or of the app.
"""

from __future__ import annotations

import os
import socket
import sys

LISTEN_FD = 3  # SD_LISTEN_FDS_START


def main(args: list[str]) -> None:
    if len(args) < 5 or args[3] != "--" or not args[1].isdigit():
        sys.exit("usage: portshim.py SOCKET PORT PROXYD -- APP...")
    path, port, proxyd, argv = args[0], int(args[1]), args[2], args[4:]
    try:
        os.unlink(path)  # the last run's
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.listen(64)
    if os.fork() == 0:
        try:
            os.dup2(os.dup(sock.fileno()), LISTEN_FD)  # dup first: the socket may already be fd 3
            # Nothing of the app's environment (its secrets): only what socket activation needs.
            os.execve(proxyd, [proxyd, f"127.0.0.1:{port}"], {"LISTEN_FDS": "1", "LISTEN_PID": str(os.getpid())})
        finally:
            os._exit(127)
    sock.close()
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main(sys.argv[1:])
