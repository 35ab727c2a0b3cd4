"""The one way a decision says no: `CommandRejected(code, message, field)`."""

from __future__ import annotations


class CommandRejected(Exception):
    """A command that cannot be applied. `code` is stable for programs, `message` is for people."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field

    def to_json(self) -> dict[str, str | None]:
        return {"code": self.code, "message": self.message, "field": self.field}
