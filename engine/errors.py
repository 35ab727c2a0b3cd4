"""Engine exceptions, importable without torch (the server catches them)."""

from __future__ import annotations


class EngineError(Exception):
    pass


class RenderCancelled(EngineError):
    """Raised between denoising steps when the render's cancellation check says stop."""


class CapabilityMissing(EngineError):
    """The loaded model lacks a component an operation needs (e.g. an instruct-pix2pix UNet)."""


class MissingInput(EngineError):
    """An operation's layer input was not handed to the renderer."""


class MissingBlob(EngineError):
    """An operation asked for an uploaded blob the render cannot read (no reader configured, or not stored)."""


class InvalidBlob(EngineError):
    """A blob's bytes are not an acceptable image (format, size, damage) or do not match its sha256."""


class ModelUnavailable(EngineError):
    """The model cannot be found or fetched (not cached, offline, no such file); the message says what to do."""
