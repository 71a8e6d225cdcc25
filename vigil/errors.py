"""User-facing errors: each is one line that names the thing at fault.

The CLI prints ``error: <message>`` and exits 2 for any ``VigilError``; no stack trace.
"""


class VigilError(Exception):
    """A problem the user can fix (bad config, missing model, bad file)."""


class ConfigError(VigilError):
    """The configuration is malformed; the message names the YAML path at fault."""


class ModelError(VigilError):
    """A model is missing or corrupt; the message names the command that fixes it."""


class DataError(VigilError):
    """Test or benchmark data is missing or unreadable."""


class SourceError(VigilError):
    """A camera or video file cannot be opened or decoded."""
