"""Exception types shared by the engine, the service and the CLI.

Each carries a message meant for the user; the HTTP layer maps the class to a status code.
:class:`Problem` is one structured way a model file breaks the model contract (a ModelError lists them).
"""

from __future__ import annotations

from dataclasses import dataclass

MISMATCH, MISSING = "mismatch", "missing"  # a problem's kind (also ``models verify``'s row states)


@dataclass(frozen=True)
class Problem:
    """One way a component breaks the contract.

    ``expected`` and ``found`` are the facts; ``detail`` says them for a report row that already
    names the component and file; ``message`` is one line that stands alone (an error's text).
    """

    component: str
    file: str | None
    expected: str
    found: str
    detail: str
    message: str
    hint: str = ""
    kind: str = MISMATCH

    def __str__(self) -> str:
        return self.message


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
