"""In-process emulator of the Google Cloud APIs rollbot uses (gRPC, real message types)."""

from . import methods
from .faults import Faults
from .log_filter import FilterError, LogFilter, parse_filter
from .secret_manager import secret_payload
from .server import GoogleEmulator, RecordedCall

__all__ = [
    "Faults",
    "FilterError",
    "GoogleEmulator",
    "LogFilter",
    "RecordedCall",
    "methods",
    "parse_filter",
    "secret_payload",
]
