import json
import subprocess
import sys
from pathlib import Path

import pytest

from chat.config import ConfigError, ModelId, load_settings, parse_model_id, read_secrets

ROOT = Path(__file__).resolve().parent.parent


def test_model_ids_are_provider_colon_model_and_the_model_may_hold_colons():
    assert parse_model_id("anthropic:claude-haiku-4-5") == ModelId("anthropic", "claude-haiku-4-5")
    assert parse_model_id("ollama:qwen2.5:7b") == ModelId("ollama", "qwen2.5:7b")
    assert str(parse_model_id(" OpenAI:gpt-4o ")) == "openai:gpt-4o"


@pytest.mark.parametrize("bad", ["", "gpt-4o", ":gpt-4o", "openai:"])
def test_a_malformed_model_id_is_refused_with_a_clear_message(bad):
    with pytest.raises(ConfigError, match="provider:model"):
        parse_model_id(bad)


def test_only_providers_with_a_key_are_configured():
    s = load_settings({"ANTHROPIC_API_KEY": "k"}, {})
    assert [e.name for e in s.configured] == ["anthropic"]
    assert s.initial_model() == "anthropic:claude-haiku-4-5"


def test_the_environment_wins_over_secrets():
    s = load_settings({"OPENAI_API_KEY": "from-env"}, {"OPENAI_API_KEY": "from-file", "CHAT_DB": "x.db"})
    assert s.endpoint("openai").api_key == "from-env"
    assert s.database == Path("x.db")


def test_the_database_defaults_to_a_file_in_the_working_directory():
    assert load_settings({}, {}).database == Path("chat.db")


def test_named_openai_compatible_endpoints_come_from_secrets_and_the_environment():
    secrets = {"endpoints": {"ollama": {"base_url": "http://localhost:11434/v1", "models": ["llama3.2"]}}}
    env = {"CHAT_ENDPOINTS": json.dumps({"vllm": {"base_url": "http://gpu:8000/v1", "api_key": "k",
                                                  "models": ["qwen"], "context_window": 32768}})}
    s = load_settings(env, secrets)
    assert s.available_models() == ["ollama:llama3.2", "vllm:qwen"]
    assert s.endpoint("vllm").context_window == 32768
    assert s.endpoint("ollama").kind == "openai"


@pytest.mark.parametrize("spec", [
    {"openai": {"base_url": "http://x", "models": ["m"]}},
    {"bad name!": {"base_url": "http://x", "models": ["m"]}},
    {"box": {"models": ["m"]}},
    {"box": {"base_url": "http://x"}},
])
def test_a_bad_endpoint_is_refused_with_a_clear_message(spec):
    with pytest.raises(ConfigError):
        load_settings({"CHAT_ENDPOINTS": json.dumps(spec)}, {})


def test_the_default_model_is_used_when_available_and_checked_for_shape():
    env = {"OPENAI_API_KEY": "k", "ANTHROPIC_API_KEY": "k", "CHAT_DEFAULT_MODEL": "anthropic:claude-sonnet-4-5"}
    assert load_settings(env, {}).initial_model() == "anthropic:claude-sonnet-4-5"
    with pytest.raises(ConfigError):
        load_settings({**env, "CHAT_DEFAULT_MODEL": "sonnet"}, {})


def test_keys_never_appear_in_the_settings_repr():
    s = load_settings({"OPENAI_API_KEY": "sk-secret-123"}, {})
    assert "sk-secret-123" not in repr(s)


def test_the_chat_package_never_imports_streamlit():
    code = ("import sys, importlib, pkgutil, chat, chat.providers\n"
            "for m in pkgutil.walk_packages(chat.__path__, 'chat.'):\n"
            "    importlib.import_module(m.name)\n"
            "print('streamlit' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------- failing closed on bad values


def price(**fields):
    return {"openai:gpt-4o-mini": {"input_mtok": 0.15, "output_mtok": 0.6, **fields}}


BAD_ENV = [
    ({"CHAT_PRICES": "[1, 2]"}, "CHAT_PRICES must be a JSON object"),
    ({"CHAT_PRICES": '{"openai:gpt-4o-mini": 5}'}, "expected a table of prices"),
    ({"CHAT_PRICES": json.dumps(price(input_mtok="cheap"))}, "input_mtok must be a number"),
    ({"CHAT_PRICES": json.dumps(price(output_mtok=-1))}, "output_mtok must be a finite number >= 0"),
    ({"CHAT_MAX_RETRIES": "-3"}, "CHAT_MAX_RETRIES must be a whole number at least 0"),
    ({"CHAT_MAX_RETRIES": "2.5"}, "CHAT_MAX_RETRIES must be a whole number"),
    ({"CHAT_MAX_RETRIES": "two"}, "CHAT_MAX_RETRIES must be a whole number"),
    ({"CHAT_TIMEOUT": "0"}, "CHAT_TIMEOUT must be a number greater than 0"),
    ({"CHAT_TIMEOUT": "-5"}, "CHAT_TIMEOUT must be a number greater than 0"),
    ({"CHAT_TIMEOUT": "nan"}, "CHAT_TIMEOUT must be a number"),
    ({"CHAT_TIMEOUT": "inf"}, "CHAT_TIMEOUT must be a number"),
    ({"CHAT_MAX_RETRY_WAIT": "-1"}, "CHAT_MAX_RETRY_WAIT must be a number at least 0"),
    ({"CHAT_MAX_RETRY_WAIT": "nan"}, "CHAT_MAX_RETRY_WAIT must be a number"),
    ({"CHAT_DAILY_LIMIT_USD": "nan"}, "CHAT_DAILY_LIMIT_USD must be a number greater than 0"),
    ({"CHAT_DAILY_LIMIT_USD": "-1"}, "CHAT_DAILY_LIMIT_USD must be a number greater than 0"),
    ({"CHAT_DAILY_LIMIT_USD": "inf"}, "leave it unset for no limit"),
    ({"CHAT_DAILY_LIMIT_USD": "ten dollars"}, "CHAT_DAILY_LIMIT_USD must be a number"),
    ({"CHAT_ENDPOINTS": json.dumps({"box": "http://x"})}, "Endpoint 'box' must be a table"),
    ({"CHAT_ENDPOINTS": json.dumps({"box": {"base_url": "ftp://x", "models": ["m"]}})},
     "Endpoint 'box': base_url must be an http:// or https:// address"),
    ({"CHAT_ENDPOINTS": json.dumps({"box": {"base_url": "localhost:11434", "models": ["m"]}})},
     "base_url must be an http:// or https:// address"),
    ({"CHAT_ENDPOINTS": json.dumps({"box": {"base_url": "http://x", "models": 5}})},
     "Endpoint 'box': models must be a list of model names"),
    ({"CHAT_ENDPOINTS": json.dumps({"box": {"base_url": "http://x", "models": ["m"], "context_window": "big"}})},
     "Endpoint 'box': context_window must be a whole number greater than 0"),
    ({"CHAT_ENDPOINTS": json.dumps({"box": {"base_url": "http://x", "models": ["m"], "context_window": 0}})},
     "context_window must be a whole number greater than 0"),
    ({"CHAT_ENDPOINTS": json.dumps({"box": {"base_url": "http://x", "models": ["m"], "context_window": -8}})},
     "context_window must be a whole number greater than 0"),
    ({"CHAT_ENDPOINTS": json.dumps({"box": {"base_url": "http://x", "models": ["m"], "modles": ["n"]}})},
     "unknown field(s) 'modles'"),
    ({"OPENAI_BASE_URL": "api.openai.com/v1"}, "OPENAI_BASE_URL must be an http:// or https:// address"),
    ({"CHAT_AUTH_HEADER": "X Forwarded Email"}, "CHAT_AUTH_HEADER must be a header name"),
]


@pytest.mark.parametrize(("env", "message"), BAD_ENV, ids=[f"{next(iter(e))}={next(iter(e.values()))}"
                                                           for e, _ in BAD_ENV])
def test_a_bad_value_in_the_environment_is_refused_naming_the_setting(env, message):
    with pytest.raises(ConfigError) as caught:
        load_settings(env, {})
    assert message in str(caught.value)


BAD_SECRETS = [
    ({"models": {"openai": 5}}, "[models] openai must be a list of model names"),
    ({"models": 5}, "[models] in secrets.toml must be a table"),
    ({"endpoints": {"box": {"base_url": "http://x", "models": 5}}}, "Endpoint 'box': models must be a list"),
    ({"endpoints": {"box": {"base_url": "http://x", "models": ["m"], "context_window": True}}},
     "context_window must be a whole number"),
    ({"endpoints": {"box": 3}}, "Endpoint 'box' must be a table"),
    ({"endpoints": ["box"]}, "[endpoints] in secrets.toml must be a table"),
    ({"prices": {"openai:gpt-4o-mini": 0.15}}, "expected a table of prices"),
    ({"prices": [1, 2]}, "[prices] in secrets.toml must be a table"),
    ({"prices": {"openai:gpt-4o-mini": {"input_mtok": -0.1, "output_mtok": 1}}}, "input_mtok must be a finite"),
    ({"CHAT_ANALYSTS": 5}, "CHAT_ANALYSTS must be comma-separated text"),
    ({"CHAT_ANALYSTS": ["ann@x.com", 7]}, "CHAT_ANALYSTS must be comma-separated text"),
    ({"CHAT_AUTH": True}, "CHAT_AUTH must be text"),
    ({"CHAT_DAILY_LIMIT_USD": True}, "CHAT_DAILY_LIMIT_USD must be a number"),
    ({"CHAT_TIMEOUT": [60]}, "CHAT_TIMEOUT must be a number"),
    ({"OPENAI_API_KEY": 12345}, "OPENAI_API_KEY must be text"),
]


@pytest.mark.parametrize(("secrets", "message"), BAD_SECRETS, ids=[m for _, m in BAD_SECRETS])
def test_a_bad_value_in_secrets_is_refused_naming_the_setting(secrets, message):
    with pytest.raises(ConfigError) as caught:
        load_settings({}, secrets)
    assert message in str(caught.value)


def test_good_values_in_either_place_are_read_as_numbers():
    s = load_settings({"CHAT_TIMEOUT": "2.5", "CHAT_MAX_RETRIES": "0", "CHAT_DAILY_LIMIT_USD": "0.000001"},
                      {"CHAT_MAX_RETRY_WAIT": 0, "CHAT_ANALYSTS": ["Ann@x.com"],
                       "endpoints": {"box": {"base_url": "https://x/v1", "models": "a, b", "context_window": 8192}},
                       "prices": {"box:*": {"input_mtok": 0, "output_mtok": "0.5"}}})
    assert (s.timeout, s.max_retries, s.max_retry_wait, s.daily_limit_usd) == (2.5, 0, 0.0, 0.000001)
    assert s.analysts == {"ann@x.com"} and s.endpoint("box").models == ("a", "b")
    assert s.endpoint("box").context_window == 8192 and s.prices["box:*"]["output_mtok"] == "0.5"
    assert load_settings({}, {}).daily_limit_usd is None


def test_a_price_problem_is_a_config_error_of_its_own_kind():
    from chat.config import PriceConfigError

    with pytest.raises(PriceConfigError, match="CHAT_PRICES"):
        load_settings({"CHAT_PRICES": json.dumps(price(input_mtok="cheap"))}, {})


# ---------------------------------------------------------------- the secrets file


def test_a_missing_secrets_file_is_no_configuration_at_all(tmp_path):
    assert read_secrets(tmp_path / "secrets.toml") is None


def test_a_secrets_file_is_read_as_toml(tmp_path):
    path = tmp_path / "secrets.toml"
    path.write_text('CHAT_AUTH = "header"\n[endpoints.box]\nbase_url = "http://x"\nmodels = ["m"]\n')
    assert read_secrets(path) == {"CHAT_AUTH": "header", "endpoints": {"box": {"base_url": "http://x",
                                                                                "models": ["m"]}}}


def test_a_syntax_error_in_secrets_names_the_file_the_line_and_the_problem(tmp_path):
    path = tmp_path / "secrets.toml"
    path.write_text('CHAT_AUTH = "header"\nCHAT_DAILY_LIMIT_USD = 5\nOPENAI_API_KEY = sk-unquoted\n')
    with pytest.raises(ConfigError) as caught:
        read_secrets(path)
    message = str(caught.value)
    assert str(path) in message and "line 3, column 18" in message and "Invalid value" in message
    assert "sk-unquoted" not in message  # the offending text is not echoed (it may be a key)


def test_an_unterminated_secrets_file_is_refused_too(tmp_path):
    path = tmp_path / "secrets.toml"
    path.write_text('[endpoints.box\n')
    with pytest.raises(ConfigError, match="secrets.toml, line 1"):
        read_secrets(path)


def test_an_unreadable_or_binary_secrets_file_is_refused_naming_it(tmp_path):
    folder = tmp_path / "secrets.toml"
    folder.mkdir()  # cannot be read as a file
    with pytest.raises(ConfigError, match="cannot be read"):
        read_secrets(folder)
    binary = tmp_path / "other.toml"
    binary.write_bytes(b'CHAT_AUTH = "\xff\xfe"\n')
    with pytest.raises(ConfigError, match="other.toml is not UTF-8"):
        read_secrets(binary)


# ---------------------------------------------------------------- where conversations are stored


def test_a_postgresql_url_in_chat_db_selects_postgresql_and_a_path_keeps_sqlite():
    url = "postgresql://chat:secret@db.internal:5432/chat"
    assert load_settings({"CHAT_DB": url}, {}).database == url
    assert load_settings({"CHAT_DB": "data/chat.db"}, {}).database == Path("data/chat.db")
    assert load_settings({}, {"CHAT_DB": "postgres://u@h/d"}).database == "postgres://u@h/d"


def test_a_database_table_in_secrets_gives_the_url_or_the_path_and_the_pool_size():
    s = load_settings({}, {"database": {"url": "postgresql://chat@db/chat", "pool_size": 4}})
    assert (s.database, s.database_pool_size) == ("postgresql://chat@db/chat", 4)
    assert load_settings({}, {"database": {"path": "/srv/chat.db"}}).database == Path("/srv/chat.db")
    assert load_settings({"CHAT_DB": "env.db"}, {"database": {"url": "postgresql://chat@db/chat"}}).database == Path(
        "env.db")  # the environment wins


@pytest.mark.parametrize(("env", "secrets", "message"), [
    ({"CHAT_DB": "mysql://u@h/d"}, {}, "CHAT_DB must be a file path or a postgresql:// URL"),
    ({}, {"database": "postgresql://u@h/d"}, "[database] in secrets.toml must be a table"),
    ({}, {"database": {"url": "postgresql://u@h/d", "password": "x"}}, "[database] has unknown field(s) 'password'"),
    ({}, {"database": {"url": "postgresql://u@h/d", "path": "x.db"}}, "not both"),
    ({}, {"database": {"url": "chat.db"}}, "[database] url must be a postgresql:// URL"),
    ({}, {"database": {"url": "postgresql://u@h/d", "pool_size": 0}}, "[database] pool_size must be a whole number"),
    ({}, {"database": {"url": 5}}, "[database] url must be text"),
    ({"CHAT_DB": "postgresql://u@h/d?colour=blue"}, {}, "CHAT_DB is not a valid postgresql:// URL"),
])
def test_a_malformed_database_setting_is_refused_naming_it(env, secrets, message):
    with pytest.raises(ConfigError) as caught:
        load_settings(env, secrets)
    assert message in str(caught.value)
