import json
import subprocess
import sys
from pathlib import Path

import pytest

from chat.config import ConfigError, ModelId, load_settings, parse_model_id

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
    assert s.db_path == Path("x.db")


def test_the_database_defaults_to_a_file_in_the_working_directory():
    assert load_settings({}, {}).db_path == Path("chat.db")


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
