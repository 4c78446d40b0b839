"""Who is asking, and what they may see.

Three modes, set by CHAT_AUTH (or `auth_mode` in secrets):
    none    one local user ("local"), the default: a personal or single-team install
    header  a trusted proxy sets a header (CHAT_AUTH_HEADER, default X-Forwarded-Email). Honoured only in
            this mode; the app must then be reachable only through that proxy.
    oidc    Streamlit's built-in OpenID Connect login (st.login; an [auth] section in secrets.toml)
Analysts (CHAT_ANALYSTS, comma-separated) see everyone's conversations on the History page and its
analytics; they cannot continue or delete someone else's chat.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

LOCAL_USER = "local"
MODES = ("none", "header", "oidc")


class NotSignedIn(Exception):
    """The request carries no identity in a mode that requires one; the message says what to do."""


@dataclass(frozen=True)
class Viewer:
    user: str
    analyst: bool = False

    def can_see(self, owner: str | None) -> bool:
        return owner == self.user or self.analyst

    def can_change(self, owner: str | None) -> bool:
        """Continue, delete, vote: only on one's own conversations."""
        return owner == self.user

    @property
    def scope(self) -> str | None:
        """The `user` filter for listings: None (everyone) for analysts."""
        return None if self.analyst else self.user


def resolve_viewer(mode: str, *, headers: Mapping[str, str] | None = None, header_name: str = "X-Forwarded-Email",
                   oidc_email: str | None = None, analysts: frozenset[str] = frozenset()) -> Viewer:
    if mode == "none":
        user = LOCAL_USER
    elif mode == "header":
        value = None
        for key, v in (headers or {}).items():
            if key.lower() == header_name.lower():
                value = v
                break
        user = (value or "").strip().lower()
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
