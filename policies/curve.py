"""CURVE encryption with a client allowlist for a ZMQ server socket (the policy server, the control API).

The allowlist is a directory of client public keys (``zmq.auth.create_certificates``). The ZAP
authenticator thread asks :meth:`CurveAllowlist.callback` at every handshake, so an unknown client
is refused before it can send a single message. :meth:`allowed_frame` checks a received frame's
CURVE identity (``User-Id``) against the current list, so a key removed by :meth:`reload` is refused
on connections already open too — before the frame is decoded.
"""

from __future__ import annotations

from typing import Any


class CurveAllowlist:
    """The server side of CURVE for one socket: the server's key pair and the allowed client keys."""

    def __init__(self, ctx: Any, server_secret_key: str, allowed_clients: str):
        from zmq.auth.thread import ThreadAuthenticator

        self.server_secret_key, self.allowed_clients = str(server_secret_key), str(allowed_clients)
        self.allowed: set[str] = set()
        self.refused = 0  # frames refused by allowed_frame()
        self.reload()
        self.auth: Any = ThreadAuthenticator(ctx)
        self.auth.start()
        # The authenticator thread asks us at each handshake: the allowlist is ours, so reloading it is
        # a plain swap of a set (no call into the authenticator's thread).
        self.auth.configure_curve_callback(domain="*", credentials_provider=self)

    def attach(self, sock: Any) -> None:
        """Make `sock` (before bind) a CURVE server with this key pair."""
        import zmq.auth

        pub, sec = zmq.auth.load_certificate(self.server_secret_key)
        sock.curve_secretkey = sec
        sock.curve_publickey = pub
        sock.curve_server = True

    def reload(self) -> int:
        """Re-read the allowed clients' keys; how many there are now."""
        import zmq.auth

        keys = zmq.auth.load_certificates(self.allowed_clients)
        self.allowed = {k.decode() if isinstance(k, bytes) else str(k) for k in keys}
        return len(self.allowed)

    def callback(self, domain: str, key: bytes) -> bool:
        """The CURVE handshake's question (zmq.auth credentials provider): is this z85 key allowed?"""
        return (key.decode() if isinstance(key, bytes) else str(key)) in self.allowed

    def allowed_frame(self, frame: Any) -> bool:
        """Whether a received zmq.Frame came from a client on the current list (counted when not)."""
        import zmq

        try:
            user = frame.get("User-Id")
        except zmq.ZMQError:
            user = None
        ok = user in self.allowed
        if not ok:
            self.refused += 1
        return ok

    def stop(self) -> None:
        if self.auth is not None:
            self.auth.stop()
            self.auth = None
