"""One error hierarchy for SigDL.

Every error a user can cause by what they typed or gave us is a :class:`BadInputError`:
the CLI answers it with one line (what was wrong, how to mend it) and exit code 2, never a
traceback. Anything else escaping is a bug in SigDL or in a plugin and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class SigdlError(Exception):
    """Base of every error SigDL raises on purpose.

    ``hint`` says how to mend the problem; the CLI prints ``message (hint)`` on one line.
    """

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        """The message and the hint folded into a single line of text."""
        text = self.message if not self.hint else f"{self.message}; {self.hint}"
        return " ".join(text.split())


class BadInputError(SigdlError):
    """The user gave something SigDL cannot use: a value, a file, a name."""


class UnknownNameError(BadInputError):
    """A model, dataset, framework, compressor, target, emulator or plugin name is unknown."""

    def __init__(self, kind: str, name: str, known: Iterable[str], hint: str | None = None):
        known = sorted(known)
        close = difflib.get_close_matches(name, known, n=1)
        if hint is None:
            if close:
                hint = f"did you mean '{close[0]}'?"
            elif known:
                hint = "known: " + ", ".join(known)
            else:
                hint = f"no {kind} is installed; install a plugin that provides one"
            if known and close:
                hint += " (known: " + ", ".join(known) + ")"
        super().__init__(f"unknown {kind} '{name}'", hint)
        self.kind = kind
        self.name = name
        self.known = known


class InvalidValueError(BadInputError):
    """An option or recipe value is out of range or of the wrong type."""


class ModelFileError(BadInputError):
    """A model, checkpoint or artifact file is missing, unreadable, corrupt or unsafe."""


class DataFileError(BadInputError):
    """A dataset file or folder is missing, unreadable, corrupt or truncated."""


class UnsafeFileError(ModelFileError):
    """A file would run code if loaded (a pickled object in a checkpoint, say)."""


class PluginError(SigdlError):
    """A plugin could not be loaded, broke the hook contract, or clashes with another."""


class DuplicateNameError(PluginError):
    """Two plugins registered the same name for one kind of thing."""

    def __init__(self, kind: str, name: str, first: str, second: str) -> None:
        super().__init__(
            f"{kind} '{name}' is registered by both plugin '{first}' and plugin '{second}'",
            "uninstall one of them, or disable one with SIGDL_DISABLE_PLUGINS="
            f"{second}",
        )
        self.kind = kind
        self.name = name
        self.sources = (first, second)


class UnsupportedModelError(BadInputError):
    """A model uses something a framework, compressor or target cannot handle."""
