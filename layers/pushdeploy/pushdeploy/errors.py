"""The project's own error types: everything a user can cause ends in one of these, never a traceback."""

from __future__ import annotations

from collections.abc import Sequence


class PushdeployError(Exception):
    """Base class of every error pushdeploy raises on purpose."""


class EventError(PushdeployError):
    """An event or webhook body that pushdeploy cannot read. The message is one line."""


class RulesError(PushdeployError):
    """An invalid rules file. Every problem is kept, one line each, naming the rule id and the field."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        super().__init__("\n".join(self.problems))
