"""Access control: bearer tokens, stored hashed, each opening one canvas with one role.

Roles, weakest first: viewer (read, presence) < editor (commands, uploads) < owner (also shares) < admin
(every canvas; the server's own token, written to the data directory and, when the server listens on
loopback only, handed to a browser on the same machine). A token for one canvas opens no other.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sqlalchemy import Engine, insert, select, update

from server.store.tables import TokenRow

Role = Literal["viewer", "editor", "owner", "admin"]
RANK: dict[str, int] = {"viewer": 1, "editor": 2, "owner": 3, "admin": 4}
SHARE_ROLES = ("viewer", "editor")

tokens = TokenRow.__table__  # type: ignore[attr-defined]


def hash_token(token: str) -> str:
    # Tokens are 256 random bits: a plain sha256 is enough (no dictionary to guard against).
    return hashlib.sha256(token.encode()).hexdigest()


def link_token(issuer_token: str, share_id: str) -> str:
    """A share link's token, derived from the token that made it: whoever made the link can be shown it again,
    while the database still holds only hashes (the key, the issuer's token, is never stored)."""
    digest = hmac.new(issuer_token.encode(), f"opendream-share:{share_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass(frozen=True, slots=True)
class Grant:
    token_id: str
    canvas_id: str | None  # None: every canvas (admin)
    role: Role
    label: str

    def allows(self, canvas_id: str, role: Role) -> bool:
        if self.canvas_id is not None and self.canvas_id != canvas_id:
            return False
        return RANK[self.role] >= RANK[role]


RESERVED_ACTORS = frozenset({"engine", "import", "system"})


def attributed_user(grant: Grant, claimed: str | None) -> str:
    """Whom events are attributed to (and whose undo history they join): derived from the credential.

    A token may be held by several people (a share link sent to a team), so a client may name who it is
    within its token: the id is `<token id>.<claimed>` — it can never be another token's user, nor a reserved
    actor such as `engine`. Without a claim it is the token itself.
    """
    base = f"t{grant.token_id}"
    return f"{base}.{claimed}" if claimed else base


def _recovered(caller_token: str | None, share_id: str, token_hash: str) -> str | None:
    # A link made by another token (or before links were derived) does not match: it cannot be shown again.
    if not caller_token:
        return None
    token = link_token(caller_token, share_id)
    return token if hmac.compare_digest(hash_token(token), token_hash) else None


@dataclass(frozen=True, slots=True)
class Share:
    id: str
    canvas_id: str | None
    role: str
    label: str
    created_at: float
    revoked: bool
    token: str | None = None  # the link's token, when the caller's token made it (link_token)


class TokenStore:
    def __init__(self, writer: Engine, reader: Engine) -> None:
        self._engine = writer
        self._reader = reader

    def issue(
        self, canvas_id: str | None, role: Role, label: str = "", issuer_token: str | None = None
    ) -> tuple[str, Share]:
        """A new token. With `issuer_token` (share links) it is derived from it, so it can be shown again."""
        share_id = secrets.token_hex(6)
        token = link_token(issuer_token, share_id) if issuer_token else secrets.token_urlsafe(32)
        share = Share(share_id, canvas_id, role, label, time.time(), False)
        with self._engine.begin() as conn:
            conn.execute(
                insert(tokens).values(
                    id=share.id,
                    token_hash=hash_token(token),
                    canvas_id=canvas_id,
                    role=role,
                    label=label,
                    created_at=share.created_at,
                )
            )
        return token, share

    def resolve(self, token: str | None) -> Grant | None:
        if not token or len(token) > 256:
            return None
        with self._reader.connect() as conn:
            row = conn.execute(
                select(tokens).where(tokens.c.token_hash == hash_token(token), tokens.c.revoked_at.is_(None))
            ).first()
        return None if row is None else Grant(row.id, row.canvas_id, row.role, row.label)

    def shares(self, canvas_id: str, caller_token: str | None = None) -> list[Share]:
        """The share links of a canvas (the owner's own token is not one: it cannot be listed or revoked), each
        active one with its token when `caller_token` made it."""
        with self._reader.connect() as conn:
            rows = conn.execute(
                select(tokens)
                .where(tokens.c.canvas_id == canvas_id, tokens.c.role.in_(SHARE_ROLES))
                .order_by(tokens.c.created_at)
            )
            return [
                Share(row.id, row.canvas_id, row.role, row.label, row.created_at, row.revoked_at is not None,
                      None if row.revoked_at is not None else _recovered(caller_token, row.id, row.token_hash))
                for row in rows
            ]  # fmt: skip

    def revoke(self, canvas_id: str, share_id: str) -> bool:
        with self._engine.begin() as conn:
            result = conn.execute(
                update(tokens)
                .where(
                    tokens.c.id == share_id,
                    tokens.c.canvas_id == canvas_id,
                    tokens.c.role.in_(SHARE_ROLES),
                    tokens.c.revoked_at.is_(None),
                )
                .values(revoked_at=time.time())
            )
            return result.rowcount == 1

    def admin_token(self, path: Path) -> str:
        """The server's admin token: read from `path`, or issued and written there (readable by its owner only)."""
        if path.exists():
            token = path.read_text().strip()
            if self.resolve(token) is not None:
                return token
        token, _ = self.issue(None, "admin", "server admin")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(token + "\n")
        return token
