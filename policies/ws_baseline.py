"""The transport benchmark's baseline: what a user would otherwise deploy, an openpi-style
websocket + msgpack policy server and client.

The layout follows openpi's published client/server: a websocket connection, server metadata sent
on connect, then one binary msgpack message per observation and one per action chunk. Arrays are
msgpack maps ``{"__ndarray__": True, "data": bytes, "dtype": str, "shape": list}``. Run as a module,
it serves a no-op policy (zeros of the given chunk shape) on a unix socket or a TCP port.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import msgpack
import numpy as np


def _pack(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": True, "data": obj.tobytes(), "dtype": obj.dtype.str, "shape": list(obj.shape)}
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _unpack(obj: dict) -> Any:
    if "__ndarray__" in obj:
        return np.ndarray(buffer=obj["data"], dtype=np.dtype(obj["dtype"]), shape=obj["shape"])
    return obj


def packb(obj: Any) -> bytes:
    return msgpack.packb(obj, default=_pack, use_bin_type=True)


def unpackb(data: bytes) -> Any:
    return msgpack.unpackb(data, object_hook=_unpack, raw=False)


def serve(unix_path: str | None, port: int, chunk_length: int, action_dim: int) -> None:
    from websockets.sync.server import serve as ws_serve
    from websockets.sync.server import unix_serve

    chunk = np.zeros((chunk_length, action_dim), dtype=np.float32)

    def handler(ws: Any) -> None:
        ws.send(packb({"policy": "noop", "chunk_length": chunk_length, "action_dim": action_dim}))
        for message in ws:
            t0 = time.perf_counter_ns()
            obs = unpackb(message)
            del obs
            ws.send(packb({"actions": chunk, "server_timing": {"infer_ms": (time.perf_counter_ns() - t0) / 1e6}}))

    kw = {"compression": None, "max_size": None}
    srv = unix_serve(handler, unix_path, **kw) if unix_path else ws_serve(handler, "127.0.0.1", port, **kw)
    with srv as s:
        print("ready", flush=True)
        s.serve_forever()


class WsClient:
    def __init__(self, unix_path: str | None = None, port: int = 0):
        from websockets.sync.client import connect, unix_connect

        kw = {"compression": None, "max_size": None}
        self.ws = unix_connect(unix_path, uri="ws://localhost/", **kw) if unix_path else connect(f"ws://127.0.0.1:{port}", **kw)
        self.metadata = unpackb(self.ws.recv())

    def infer(self, obs: dict[str, Any]) -> dict[str, Any]:
        self.ws.send(packb(obs))
        return unpackb(self.ws.recv())

    def close(self) -> None:
        self.ws.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="openpi-style websocket+msgpack no-op policy server (benchmark baseline)")
    ap.add_argument("--unix", default=None, help="serve on this unix socket path")
    ap.add_argument("--port", type=int, default=0, help="serve on this TCP port on 127.0.0.1")
    ap.add_argument("--chunk-length", type=int, default=50)
    ap.add_argument("--action-dim", type=int, default=32)
    a = ap.parse_args()
    serve(a.unix, a.port, a.chunk_length, a.action_dim)
