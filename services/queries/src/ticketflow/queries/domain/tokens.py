"""Bearer tokens and what they may do (pure). A token is configured by its SHA-256 hash, never in plain
text, with scopes:

    read:<desk>    read one desk's read models ("read:*": every desk)
    agent:<desk>   act on a desk as the agent named by `agent_id` (reads the desk too)

and, optionally, `expires_at`: from then on the token is refused (401, saying it expired).

A request's token is hashed and looked up (`Grants.principal`); the principal carries the desks it may read
and, for an agent, the agent's identity, which is the actor of any command the agent sends through the API.
Tokens are random (`new_token`: 256 bits), so a plain SHA-256 is enough: guessing a hash's preimage is
as hard as guessing the token."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

import msgspec

TOKEN_PREFIX = "tfq_"  # recognisable in a leaked log or a secret scanner
_SCOPE = re.compile(r"^(read|agent):([A-Za-z0-9_.-]+|\*)$")


class TokenGrant(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str  # who holds it (an agent, a wallboard), for logs and /v1/me
    sha256: Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]
    scopes: tuple[str, ...]
    agent_id: str | None = None
    expires_at: datetime | None = None  # after it the token is refused (401, "expired"); with a time zone


class TokenFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    tokens: tuple[TokenGrant, ...] = ()


class TokenConfigError(ValueError):
    """The token grants cannot be used as written; the message names the grant and what is wrong."""


@dataclass(frozen=True)
class Principal:
    """Who a request comes from: the token's name, the desks it may read, and the agent it acts as."""

    name: str
    reads: frozenset[str]
    agent_id: str | None = None
    acts_on: frozenset[str] = frozenset()
    expires_at: datetime | None = None

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def can_read(self, desk_id: str) -> bool:
        return desk_id in self.reads

    def can_act(self, desk_id: str) -> bool:
        return self.agent_id is not None and desk_id in self.acts_on


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


class Grants:
    """The configured tokens, by hash."""

    def __init__(self, principals: Mapping[str, Principal]) -> None:
        self._by_hash = dict(principals)

    def __len__(self) -> int:
        return len(self._by_hash)

    def principal(self, token: str) -> Principal | None:
        return self._by_hash.get(token_hash(token))


def grants(configured: Iterable[TokenGrant], desks: Iterable[str]) -> Grants:
    """Check every grant against the desks and each other; raises `TokenConfigError` naming each problem."""
    known = frozenset(desks)
    problems: list[str] = []
    principals: dict[str, Principal] = {}
    for grant in configured:
        reads: set[str] = set()
        acts: set[str] = set()
        for scope in grant.scopes:
            match = _SCOPE.match(scope)
            if match is None:
                problems.append(f"token {grant.name!r}: scope {scope!r} is not read:<desk> or agent:<desk>")
                continue
            kind, desk = match.groups()
            chosen = known if desk == "*" else {desk}
            if desk != "*" and desk not in known:
                problems.append(f"token {grant.name!r}: scope {scope!r} names no configured desk ({sorted(known)})")
            elif kind == "agent" and desk == "*":
                problems.append(f"token {grant.name!r}: an agent acts on named desks, not {scope!r}")
            else:
                reads |= chosen
                if kind == "agent":
                    acts |= chosen
        if acts and not grant.agent_id:
            problems.append(f"token {grant.name!r}: agent scopes need the agent's identity (agent_id)")
        if grant.agent_id and not acts:
            problems.append(f"token {grant.name!r}: agent_id without an agent:<desk> scope")
        if not grant.scopes:
            problems.append(f"token {grant.name!r}: no scopes")
        if grant.expires_at is not None and grant.expires_at.tzinfo is None:
            problems.append(f"token {grant.name!r}: expires_at needs a time zone (e.g. 2027-01-31T18:00:00+03:00)")
        if grant.sha256 in principals:
            problems.append(f"token {grant.name!r}: the same hash as token {principals[grant.sha256].name!r}")
        principals[grant.sha256] = Principal(
            grant.name, frozenset(reads), grant.agent_id, frozenset(acts), grant.expires_at
        )
    if problems:
        raise TokenConfigError("\n".join(problems))
    return Grants(principals)


def parse_grants(toml_text: str | None, json_text: str | None) -> list[TokenGrant]:
    """The grants of a TOML file (`[[tokens]]`) and of a JSON list; raises `TokenConfigError`."""
    found: list[TokenGrant] = []
    try:
        if toml_text:
            found += msgspec.toml.decode(toml_text, type=TokenFile).tokens
        if json_text:
            found += msgspec.json.decode(json_text, type=tuple[TokenGrant, ...])
    except msgspec.ValidationError as error:
        raise TokenConfigError(f"token grants: {error}") from None
    except msgspec.DecodeError as error:
        raise TokenConfigError(f"token grants are not valid TOML or JSON: {error}") from None
    return found


def grant_toml(
    name: str, token: str, scopes: Iterable[str], agent_id: str | None, expires_at: datetime | None = None
) -> str:
    """The `[[tokens]]` entry for a token (its hash, never the token)."""
    lines = ["[[tokens]]", f"name = {_quote(name)}", f'sha256 = "{token_hash(token)}"']
    lines.append("scopes = [" + ", ".join(_quote(s) for s in scopes) + "]")
    if agent_id:
        lines.append(f"agent_id = {_quote(agent_id)}")
    if expires_at:
        lines.append(f"expires_at = {expires_at.isoformat()}")
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    return msgspec.json.encode(text).decode()
