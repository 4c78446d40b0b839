"""Who is asking, and what they may see.

Three modes, set by CHAT_AUTH (or `auth_mode` in secrets):
    none    one local user ("local"), the default: a personal or single-team install
    header  a trusted proxy sets a header (CHAT_AUTH_HEADER, default X-Forwarded-Email). Honoured only in
            this mode; the app must then be reachable only through that proxy. A request that carries the
            header more than once, or a value with a comma (copies joined), is refused: a proxy that appends
            rather than replaces must not let the client's own copy win.
    oidc    Streamlit's built-in OpenID Connect login (st.login; an [auth] section in secrets.toml)
Analysts (CHAT_ANALYSTS, comma-separated) see everyone's conversations on the History page and its
analytics; they cannot continue or delete someone else's chat.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

LOCAL_USER = "local"
MODES = ("none", "header", "oidc")


class NotSignedIn(Exception):
    """The request carries no identity in a mode that requires one; the message says what to do."""


@dataclass(frozen=True)
class Viewer:
    user: str
    analyst: bool = False

    def can_change(self, owner: str | None) -> bool:
        """Continue, delete, vote: only on one's own conversations."""
        return owner == self.user

    @property
    def scope(self) -> str | None:
        """The `user` filter for listings: None (everyone) for analysts."""
        return None if self.analyst else self.user


def header_values(headers: Mapping[str, str] | Any, name: str) -> list[str]:
    """Every value of header ``name`` (case-insensitive): through ``get_all`` when the mapping has it
    (Streamlit's ``st.context.headers`` keeps repeated headers there and shows only one through ``[]``),
    plus any key that differs only in case in a plain mapping."""
    if headers is None:
        return []
    if hasattr(headers, "get_all"):
        return [str(v) for v in headers.get_all(name)]
    return [str(v) for key, v in headers.items() if key.lower() == name.lower()]


def resolve_viewer(mode: str, *, headers: Mapping[str, str] | None = None, header_name: str = "X-Forwarded-Email",
                   oidc_email: str | None = None, analysts: frozenset[str] = frozenset()) -> Viewer:
    if mode == "none":
        user = LOCAL_USER
    elif mode == "header":
        values = header_values(headers, header_name)
        if len(values) > 1 or any("," in v for v in values):
            raise NotSignedIn(f"The request carried the {header_name} header more than once, so who is asking is "
                              "unclear and the request is refused. The sign-in proxy must replace this header, "
                              "not add to one the browser sent.")
        user = (values[0] if values else "").strip().lower()
        if not user:
            raise NotSignedIn(f"This app expects your identity in the {header_name} header from the sign-in "
                              "proxy, and the request had none. Open it through the company proxy.")
    elif mode == "oidc":
        user = (oidc_email or "").strip().lower()
        if not user:
            raise NotSignedIn("Please log in.")
    else:
        raise ValueError(f"unknown identity mode {mode!r}; use one of {', '.join(MODES)}")
    return Viewer(user=user, analyst=user in analysts)
