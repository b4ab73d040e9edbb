"""Errors that carry a one-line reason meant for the user.

Every failure caused by bad input raises a subclass of :class:`MicrolibError`.
The CLI prints ``str(err)`` on stderr and exits 2; the GUI shows it in a dialog.
Anything else escaping is a bug.
"""


class MicrolibError(Exception):
    """Base class: ``str(err)`` is a complete one-line reason."""

    def __str__(self) -> str:  # keep it to one line whatever was passed in
        msg = super().__str__()
        return " ".join(msg.split())


class ImageError(MicrolibError):
    """An image file could not be used (corrupt, empty, too small, ...)."""


class StoreError(MicrolibError):
    """The library store refused an operation (unknown entry, bad folder, ...)."""


class AnnotationError(MicrolibError):
    """An annotation file or value is malformed."""
