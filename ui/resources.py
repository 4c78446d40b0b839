"""Process-wide resources, built once per server (`st.cache_resource`) and shared by every session.

Each is thread-safe: the Store hands connections out per use, SDK clients are thread-safe, the Pricer and
Settings are read-only."""

from __future__ import annotations

import os

import streamlit as st

from chat.config import ConfigError, PriceConfigError, Settings, load_settings, read_secrets
from chat.identity import NotSignedIn, Viewer, resolve_viewer
from chat.mcp_servers import Toolbox
from chat.models import Catalog
from chat.pricing import Pricer
from chat.providers import Provider, Providers, build_providers
from chat.store import Store, StoreError, is_postgres_url, open_store
from server import startup


def _secrets() -> dict:
    """What `st.secrets` holds, from the files Streamlit reads (`secrets.files`). No file at all is fine (the
    environment alone configures the app); a file that exists but cannot be read or parsed is a ConfigError
    naming the file and line, never an empty configuration (that would drop the identity mode and limits)."""
    paths = [str(p) for p in st.get_option("secrets.files")]
    present = False
    for path in paths:
        if path.endswith(".toml"):
            present = read_secrets(path) is not None or present  # raises ConfigError on a bad file
        elif os.path.exists(path):  # a directory of secrets (Kubernetes style): Streamlit parses it
            present = True
    if not present:
        return {}
    try:
        return st.secrets.to_dict()
    except Exception as exc:  # what Streamlit refuses that tomllib accepted (e.g. a bad secrets directory)
        raise ConfigError(f"The secrets ({', '.join(paths)}) cannot be read: {exc}") from None


@st.cache_resource(show_spinner=False)
def settings() -> Settings:
    return load_settings(os.environ, _secrets())


@st.cache_resource(show_spinner=False)
def store() -> Store:
    cfg = settings()
    if is_postgres_url(cfg.database):  # PostgreSQL: one pool per app process, shared by its sessions
        return open_store(cfg.database, pool_size=cfg.database_pool_size)
    return open_store(cfg.database)


@st.cache_resource(show_spinner=False)
def providers() -> Providers:
    """Each endpoint's provider, built (its SDK imported) when first used, with what its first reply needs
    (a reply may be sent before the start-up loading got to it)."""
    def built(name: str, provider: Provider) -> None:
        if hasattr(provider, "thinking_mode"):  # Anthropic: adaptive thinking or a budget, as its models API says
            provider.thinking_mode = lambda model: catalog().capabilities(name, model).thinking_mode
        startup.reply_needs(settings().endpoint(name).kind)

    return build_providers(settings(), then=built)


LISTING_WAIT = 1.0  # seconds a page run waits for a model listing before showing the configured list


@st.cache_resource(show_spinner=False)
def catalog() -> Catalog:
    """What each endpoint serves and what its models can do, asked in the background and kept (Refresh asks
    again); a page run waits for it at most LISTING_WAIT."""
    return Catalog(settings(), _listing_clients, wait=LISTING_WAIT)


def _listing_clients() -> Providers:
    """The providers, for the model listings, once a first reply's needs are loaded: a listing imports its
    SDK, which would otherwise compete with that reply for the CPU."""
    startup.first_reply_loaded.wait(timeout=60)
    return providers()


TOOLS_WAIT = 0.5  # seconds a page run waits for a tool server's listing before showing it as connecting


@st.cache_resource(show_spinner=False)
def toolbox() -> Toolbox:
    """The configured MCP servers; their tool listings are made in the background (a page run waits for one at
    most TOOLS_WAIT) and cached in it until Refresh tools."""
    return Toolbox(settings().mcp_servers, wait=TOOLS_WAIT)


@st.cache_resource(show_spinner=False)
def pricer() -> Pricer:
    return Pricer(settings().prices)


def current_viewer() -> Viewer:
    """Who is using this session, per the configured identity mode; stops the page with a clear message
    (or a login button) when there is nobody."""
    cfg = settings()
    email = None
    if cfg.auth_mode == "oidc":
        try:
            logged_in = st.user.is_logged_in
        except Exception:  # no [auth] section: st.user cannot log anyone in
            st.error("Login is enabled (CHAT_AUTH=oidc) but `.streamlit/secrets.toml` has no [auth] section. "
                     "Add one (see the README) or set CHAT_AUTH=none.")
            st.stop()
        if not logged_in:
            st.title("Chat workbench")
            st.button("Log in", type="primary", on_click=st.login)
            st.stop()
        email = st.user.get("email")
    try:
        return resolve_viewer(cfg.auth_mode, headers=st.context.headers, header_name=cfg.auth_header,
                              oidc_email=email, analysts=cfg.analysts)
    except NotSignedIn as exc:
        st.error(str(exc))
        st.stop()


def signed_in_caption(viewer: Viewer) -> None:
    if settings().auth_mode == "none":
        return
    role = " · analyst" if viewer.analyst else ""
    st.caption(f"Signed in as {viewer.user}{role}")
    if settings().auth_mode == "oidc":
        st.button("Log out", type="tertiary", on_click=st.logout)


def boot() -> tuple[Settings, Store]:
    """Settings and store, or a clear message and a stopped page when either is unusable."""
    try:
        cfg = settings()
    except PriceConfigError as exc:
        st.error(f"The price configuration has a problem: {exc}")
        st.stop()
    except ConfigError as exc:
        st.error(f"The configuration has a problem: {exc}")
        st.stop()
    first = cfg.initial_model()
    endpoint = cfg.endpoint(first.partition(":")[0]) if first else None
    startup.once(st.get_option("server.port"), first_kind=endpoint.kind if endpoint is not None else "openai")
    try:
        pricer()
    except ValueError as exc:  # a malformed [prices] entry (load_settings checks them first, with Pricer)
        st.error(f"The price configuration has a problem: {exc}")
        st.stop()
    try:
        # st.cache_resource keeps only a store that opened: after a failure the next run tries again, so
        # the app recovers by itself once the file can be opened.
        db = store()
    except StoreError as exc:
        st.error(str(exc))
        st.stop()
    try:
        # Replies a crashed server left 'streaming' (live ones are written every second) are marked
        # interrupted: cheap (an indexed read that finds nothing) and correct with several processes.
        db.mark_dead_replies()
    except StoreError:
        pass  # housekeeping: the next run tries again; the page says what fails where it reads or writes
    return cfg, db
