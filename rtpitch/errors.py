"""Errors a user can act on.

Every error raised on purpose by rtpitch derives from :class:`RtpitchError`; the
CLI prints its message as one line and exits non-zero.  Each subclass also
inherits the builtin it refines, as python-rtmidi does, so callers that catch
builtins keep working.
"""


class RtpitchError(Exception):
    """Root of all rtpitch errors."""


class ConfigError(RtpitchError, ValueError):
    """A setting or argument that cannot work (rate, channel, option values)."""


class DeviceError(RtpitchError, OSError):
    """An audio device that is unknown, busy or gone."""


class MidiError(RtpitchError, OSError):
    """A MIDI port that cannot be opened or created."""


class AudioFileError(RtpitchError, OSError):
    """An audio file that is missing, unreadable, corrupt or unsupported."""


class ModelError(RtpitchError, ValueError):
    """A model file that is missing, corrupt or disagrees with its JSON."""


class BackendError(RtpitchError, RuntimeError):
    """An inference runtime that is missing or cannot run the model."""


class ClusterError(RtpitchError, RuntimeError):
    """Ray is missing, or its cluster cannot be reached (``transcribe --ray``)."""
