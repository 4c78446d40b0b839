"""Settings from the environment and `.streamlit/secrets.toml`, and the names callers import.

The UI hands in `st.secrets` as a plain mapping; this package never imports streamlit. The environment
wins over secrets, so an operator can override a file-based value without editing it. One module per job:
settings.py (Settings, load_settings), values.py (one value read and checked), secrets_file.py (the TOML
file), model_ids.py, endpoints.py, mcp.py, prices.py, capabilities.py, database.py, access.py, errors.py.

Names other tools rely on:
    OPENAI_API_KEY, OPENAI_BASE_URL, ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL   the SDKs' own variables
    CHAT_DB                 where conversations are stored: a SQLite file path (default: ./chat.db), or a
                            postgresql://user:password@host:port/dbname URL (several replicas, one database);
                            or a [database] table in secrets: url = "postgresql://..." or path = "...",
                            and pool_size (connections per app process, PostgreSQL only; default 10)
    CHAT_DEFAULT_MODEL      `provider:model` selected by default
    CHAT_ENDPOINTS          JSON: {"ollama": {"base_url": ..., "api_key": ..., "models": [...]}, ...}
    OPENAI_MODELS, ANTHROPIC_MODELS   comma-separated model lists shown in the picker
    CHAT_TIMEOUT            seconds to wait for the provider between chunks (default 60)
    CHAT_FIRST_TOKEN_TIMEOUT  seconds to wait for a reply's first output while the model thinks (default 600);
                            every reasoning delta restarts this clock
    CHAT_HIDE_MODELS        comma-separated `provider:pattern` (shell wildcards) kept out of the model picker
    CHAT_CAPABILITIES       JSON: {"provider:model": {"reasoning_effort": true, "thinking": false,
                            "context_window": 128000, "max_output": 8192}} where the provider does not say
    CHAT_MAX_RETRIES        retries the SDKs make before streaming starts (default 2)
    CHAT_AUTH               identity mode: none (default), header, oidc (see chat/identity.py)
    CHAT_AUTH_HEADER        the trusted proxy's header in header mode (default X-Forwarded-Email)
    CHAT_ANALYSTS           comma-separated users who see everyone's chats on the History page
    CHAT_DAILY_LIMIT_USD    per-user daily spending limit; a turn past it is refused
    CHAT_MAX_RETRY_WAIT     longest retry-after (s) the SDKs may wait out before a retry (default 10);
                            a longer one fails at once with "wait about N s"
    CHAT_TOOL_STEPS         model calls one reply may make while it uses tools (default 10)
    [mcp.NAME]              an MCP server (secrets.toml only): `command` with `args`/`env` (stdio) or `url`
                            with `headers` (streamable HTTP); `trust = true` runs its tools without asking
    CHAT_ATTACH_MAX_FILE_MB, CHAT_ATTACH_MAX_MESSAGE_MB   attachment limits per file (20) and per message (30)

Configuration fails closed: a secrets file that exists but cannot be read or parsed, or a setting of the
wrong type or out of range, raises ConfigError naming the setting (and for a file, the line), rather than
starting with weaker settings than were written (no identity check, no spending limit).
"""

from chat.config.endpoints import BUILTIN_PROVIDERS, DEFAULT_ANTHROPIC_MODELS, DEFAULT_OPENAI_MODELS, Endpoint
from chat.config.errors import ConfigError, PriceConfigError
from chat.config.mcp import McpServer
from chat.config.model_ids import ModelId, parse_model_id
from chat.config.secrets_file import read_secrets
from chat.config.settings import Settings, load_settings

__all__ = [
    "BUILTIN_PROVIDERS",
    "DEFAULT_ANTHROPIC_MODELS",
    "DEFAULT_OPENAI_MODELS",
    "ConfigError",
    "Endpoint",
    "McpServer",
    "ModelId",
    "PriceConfigError",
    "Settings",
    "load_settings",
    "parse_model_id",
    "read_secrets",
]
