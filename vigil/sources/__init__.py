"""Camera sources: stream reading with reconnect, timestamp sampling, privacy masks, motion gate."""

from vigil.sources.masks import PrivacyMasker, apply_privacy_masks
from vigil.sources.motion import MotionGate
from vigil.sources.reader import ReaderState, ReaderStats, StreamReader
from vigil.sources.sampling import FrameQueue, FrameSampler

__all__ = [
    "FrameQueue",
    "FrameSampler",
    "MotionGate",
    "PrivacyMasker",
    "ReaderState",
    "ReaderStats",
    "StreamReader",
    "apply_privacy_masks",
]
