"""ONNX Runtime sessions that stay quiet between runs, for every model Scenery runs on it.

Default sessions spin idle threads after each run; on a small machine those take cores from
the decoding, CLIP and request threads beside them (NudeNet on 2 cores: 84-118 ms/image
spinning against 40-57 ms without). Libraries that build their own sessions (NudeNet,
RapidOCR) get theirs replaced with one of these.
"""

from __future__ import annotations

from typing import Any


def quiet_session(path: str, threads: int | None = None, *, arena: bool = False) -> Any:
    """A CPU session of the model at ``path``: no idle spinning, ``threads`` intra-op threads
    (None: all cores), and no memory arena kept at its peak unless ``arena``."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.inter_op_num_threads = 1
    options.intra_op_num_threads = threads or 0
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.enable_cpu_mem_arena = arena
    return onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
