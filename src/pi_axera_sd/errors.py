"""Exception types shared by the engine, the service and the CLI.

Each carries a message meant for the user; the HTTP layer maps the class to a status code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only a type: the engine imports this module
    from pi_axera_sd.engine.contract_checks import Problem


class PiAxeraError(Exception):
    """Base class of every error this package raises on purpose."""


class InvalidInput(PiAxeraError):
    """The caller sent something unusable (bad image, bad parameter). HTTP 400."""


class PayloadTooLarge(InvalidInput):
    """The input exceeds a configured size limit. HTTP 413."""


class ModelError(PiAxeraError):
    """A model file is missing, unreadable, or does not have the expected signature.

    ``problems`` lists what is wrong, one item each, without the advice the message adds, so a
    caller can report them its own way instead of taking the message apart: the model contract's
    structured :class:`~pi_axera_sd.engine.contract_checks.Problem` objects (missing files,
    signatures that do not fit).
    """

    def __init__(self, message: str, problems: tuple[Problem, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems


class RuntimeUnavailable(ModelError):
    """The runtime a model needs (e.g. pyaxengine for .axmodel files) is not installed or has no device."""


class Cancelled(PiAxeraError):
    """A job was interrupted at a step boundary."""
