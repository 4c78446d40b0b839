"""The chat page: history from SQLite, a streamed reply, a stop that closes the upstream, figures per reply."""

from __future__ import annotations

import streamlit as st

from chat import history, outbox, turns
from chat.config import parse_model_id
from chat.display import InertStream, ending, escape_markdown, next_cost_line, totals_line, version_label
from chat.providers import TAKES_TEMPERATURE, Params, ProviderError
from chat.store import StoreError, title_from
from ui import render
from ui.resources import boot, current_viewer, pricer, providers, signed_in_caption

cfg, db = boot()
viewer = current_viewer()
user = viewer.user
available = cfg.available_models()

# ---------------------------------------------------------------- which conversation is open
faults: list[str] = []  # database faults met while reading: shown once, the page draws what it can


def read(fn, *args, default=None, **kwargs):
    try:
        return fn(*args, **kwargs)
    except StoreError as exc:
        faults.append(str(exc))
        return default


cid = st.query_params.get("c")
conversation = read(db.get_conversation, cid) if cid else None
if conversation is not None and conversation["user"] != user:
    conversation = None
if cid and conversation is None and not faults:
    st.warning("That conversation was not found. It may have been deleted, or the link is wrong.")
    del st.query_params["c"]
    cid = None

if st.session_state.get("open_cid") != cid:
    # Opening a conversation restores the settings it was last used with.
    st.session_state.open_cid = cid
    used = (conversation or {}).get("settings") or {}
    model_id = f"{used['provider']}:{used['model']}" if used.get("provider") else None
    st.session_state.model = model_id if model_id in available else cfg.initial_model()
    st.session_state.system = used.get("system", "")
    for key in ("temperature", "max_tokens"):  # None means "model default": an empty input
        if used.get(key) is None:
            st.session_state.pop(key, None)
        else:
            st.session_state[key] = used[key]


def new_chat() -> None:
    st.query_params.clear()
    st.session_state.open_cid = None
    st.session_state.pop("action", None)


def change(fn, *args) -> None:
    """A database change from a button: a fault is said in one toast, nothing else happens."""
    try:
        fn(*args)
    except StoreError as exc:
        st.toast(str(exc), icon=":material/error:")


def rename(conversation_id: str) -> None:
    title = " ".join((st.session_state.get(f"title-{conversation_id}") or "").split())
    if title:
        change(lambda: db.update_conversation(conversation_id, title=title))
    st.session_state["rename_open"] = False


def delete_chat(conversation_id: str) -> None:
    try:
        db.soft_delete(conversation_id)
    except StoreError as exc:
        st.toast(str(exc), icon=":material/error:")
        return
    st.session_state["chat_undo"] = conversation_id
    new_chat()


def undo_delete(conversation_id: str) -> None:
    st.session_state.pop("chat_undo", None)
    change(db.restore, conversation_id)
    st.query_params["c"] = conversation_id


def chat_button(conv: dict, key: str) -> None:
    label = escape_markdown(title_from(conv["title"] or "Untitled", 40))
    st.button(label, key=key, type="tertiary", disabled=conv["id"] == cid,
              on_click=lambda c=conv["id"]: st.query_params.update(c=c))


# ---------------------------------------------------------------- sidebar
with st.sidebar:
    signed_in_caption(viewer)
    st.button("New chat", icon=":material/add:", on_click=new_chat, use_container_width=True)
    if available:
        if st.session_state.get("model") not in available:
            st.session_state.model = cfg.initial_model()
        st.selectbox("Model", available, key="model")
        takes_temperature = TAKES_TEMPERATURE[cfg.endpoint(parse_model_id(st.session_state.model).provider).kind]
        with st.expander("Settings"):
            st.number_input("Temperature", min_value=0.0, max_value=2.0, step=0.1, key="temperature",
                            value=None, placeholder="model default" if takes_temperature else "not adjustable",
                            disabled=not takes_temperature,
                            help=None if takes_temperature else "This provider's API fixes the temperature.")
            st.number_input("Max output tokens", min_value=1, max_value=200_000, step=256, key="max_tokens",
                            value=None, placeholder="model default")
            st.text_area("System prompt", key="system", placeholder="You are a helpful assistant.")
    unconfigured = [e for e in cfg.endpoints if not e.configured]
    if available and unconfigured:
        st.caption("Not set up: " + ", ".join(e.label for e in unconfigured)
                   + ". Add a key to use them (see README).")
    if conversation is not None:
        st.caption(f"This chat: {totals_line(conversation)}")
        with st.container(horizontal=True, gap="small"):
            with st.popover("Rename", icon=":material/edit:", type="tertiary", key="rename_open", on_change="rerun"):
                st.text_input("Title", value=conversation["title"], key=f"title-{cid}", max_chars=200)
                st.button("Save", type="primary", key="rename_save", on_click=rename, args=(cid,))
            st.button("Delete", icon=":material/delete:", type="tertiary", key="delete_chat",
                      on_click=delete_chat, args=(cid,))
    undone = st.session_state.get("chat_undo")
    deleted = read(db.get_conversation, undone, include_deleted=True) if undone else None
    if deleted is not None and deleted["deleted_at"]:
        with st.container(border=True):
            st.caption(f"Deleted {escape_markdown(title_from(deleted['title'] or 'Untitled', 40))}.")
            with st.container(horizontal=True, gap="small"):
                st.button("Undo", icon=":material/undo:", key="undo_delete", on_click=undo_delete, args=(undone,))
                st.button("Dismiss", type="tertiary", key="dismiss_undo",
                          on_click=lambda: st.session_state.pop("chat_undo", None))
    elif undone:
        st.session_state.pop("chat_undo", None)
    search = st.text_input("Search your chats", key="chat_search", placeholder="Search your chats",
                           label_visibility="collapsed", icon=":material/search:")
    if search.strip():
        found = read(history.search, db, search, history.Filters(user=user), limit=15)
        if found is not None and found.problem:
            st.caption(escape_markdown(found.problem))
        elif found is not None:
            st.caption(f"{found.total:,} chat{'' if found.total == 1 else 's'} found" +
                       (f", the first {len(found.rows)}" if found.total > len(found.rows) else "") + ".")
            for conv in found.rows:
                chat_button(conv, f"found-{conv['id']}")
    else:
        recent = read(db.chat_list, user, limit=15, default=[])
        if recent:
            st.subheader("Recent", divider=False)
            for conv in recent:
                chat_button(conv, f"open-{conv['id']}")

if not available:
    st.title("Set up a provider")
    st.markdown(
        "No provider is configured yet, so there is nobody to talk to. Do one of these, then reload:\n\n"
        "- **OpenAI**: set `OPENAI_API_KEY` in the environment or in `.streamlit/secrets.toml`.\n"
        "- **Anthropic**: set `ANTHROPIC_API_KEY` the same way.\n"
        "- **A local or internal OpenAI-compatible server** (Ollama, vLLM, LM Studio): add it to "
        "`.streamlit/secrets.toml`:\n\n"
        "```toml\n[endpoints.ollama]\nbase_url = \"http://localhost:11434/v1\"\nmodels = [\"llama3.2\"]\n```\n\n"
        "`.streamlit/secrets.toml.example` lists every setting."
    )
    st.stop()

# ---------------------------------------------------------------- what this run does
model_id = parse_model_id(st.session_state.model)
settings = turns.TurnSettings(
    model_id=model_id,
    system=(st.session_state.get("system") or "").strip() or None,
    params=Params(temperature=st.session_state.get("temperature") if takes_temperature else None,
                  max_tokens=st.session_state.get("max_tokens")),
)
endpoint = cfg.endpoint(model_id.provider)
context_window = turns.context_window(endpoint, model_id.model)
turn_options = {"context_window": context_window, "user": user, "daily_limit": cfg.daily_limit_usd,
                "idle_timeout": cfg.timeout}


def stream_reply(turn: turns.Turn) -> None:
    """Stream one reply into an assistant bubble, then rerun the page to show it settled."""
    with st.chat_message("assistant"):
        thinking = st.empty()
        thinking.caption("Thinking…")
        chunks = turn.stream()

        guard = InertStream()

        def shown():
            first = True
            failures = 0
            for chunk in chunks:
                if not chunk:
                    st.session_state["_heartbeat"] = True  # gives Streamlit a chance to deliver a Stop
                    if first and turn.reply is not None and turn.reply.failed_attempts > failures:
                        failures = turn.reply.failed_attempts  # the SDK retries before streaming: say so
                        thinking.caption(f"{turn.reply.provider or 'The provider'} is busy; "
                                         f"retrying (attempt {failures + 1})…")
                    continue
                if first:
                    thinking.empty()
                    first = False
                yield guard.feed(chunk)
            yield guard.flush()

        try:
            st.write_stream(shown())
        except ProviderError:
            pass  # recorded on the reply; the rerun below shows it with a Retry button
        finally:
            chunks.close()  # a Stop lands here as StopException: this closes upstream and saves "stopped"
            turn.stop()
    st.rerun()


# ---------------------------------------------------------------- regenerate / edit (a full run)
action = st.session_state.pop("action", None)
turn = None
if action and cid:
    provider = providers()[model_id.provider]
    try:
        db.update_conversation(cid, settings=settings.as_dict())
        if action[0] == "edit" and action[1].strip():
            turn = turns.edit_last(db, provider, pricer(), cid, action[1], settings, **turn_options)
        elif action[0] == "regenerate":
            turn = turns.regenerate(db, provider, pricer(), cid, settings, **turn_options)
        elif action[0] == "continue":
            turn = turns.send(db, provider, pricer(), cid, turns.CONTINUE_PROMPT, settings, **turn_options)
    except StoreError as exc:  # nothing is lost: the edited text stays in its box, the buttons stay
        faults.append(f"{exc} Nothing was sent; try again in a moment.")

# ---------------------------------------------------------------- the conversation
def draw_conversation(rows: list[dict], live: turns.Turn | None) -> None:
    if not rows:
        st.caption(f"Talking to **{model_id}**. Ask anything below.")
    hidden = render.earlier_messages(len(rows), f"drawn-{cid}")  # a long conversation opens on its latest
    for row in rows[hidden:]:
        if live is None or row["id"] != live.message_id:
            render.message(row, tz=tz)


tz = render.viewer_timezone()
all_rows = (read(db.messages, cid, include_superseded=True, default=[]) if cid else [])  # with earlier versions
rows = [r for r in all_rows if not r["superseded"]]
if faults:
    st.error(faults[0], icon=":material/error:")
shown_upto = max((r["position"] for r in all_rows), default=0)
if turn is None:
    draw_conversation(rows, None)
else:
    try:
        with turn.running():  # from here on, a Stop or rerun anywhere still finishes the reply row
            draw_conversation(rows, turn)
            stream_reply(turn)
    except StoreError as exc:  # the reply streamed but could not be saved; a later start marks it interrupted
        st.error(str(exc), icon=":material/error:")

visible = [r for r in rows if not r.get("superseded")]
if visible:
    last = visible[-1]
    last_user = next((r for r in reversed(visible) if r["role"] == "user"), None)
    end = ending(last) if last["role"] == "assistant" else None
    retry = last["role"] == "user" or end.action == "retry"
    versions = turns.reply_versions(all_rows) if last["role"] == "assistant" else []
    shown = [i for i, v in enumerate(versions) if not v["superseded"]]
    with st.container(horizontal=True, vertical_alignment="center", gap="small"):
        st.button("Retry" if retry else "Regenerate", icon=":material/refresh:", type="tertiary",
                  help=None if retry else "Ask again; the earlier reply stays a click away.",
                  on_click=lambda: st.session_state.update(action=("regenerate",)))
        if last_user is not None:
            edit_key = f"edit-{last_user['id']}"
            with st.popover("Edit", icon=":material/edit:", type="tertiary", key=f"{edit_key}-open",
                            on_change="rerun"):
                st.text_area("Your last message", value=last_user["content"], key=edit_key)
                st.button("Resend", type="primary", on_click=lambda: st.session_state.update(
                    {"action": ("edit", st.session_state[edit_key]), f"{edit_key}-open": False}))
        if end is not None and end.action == "continue":
            st.button("Continue", icon=":material/fast_forward:", type="tertiary",
                      help="Ask the model to go on from where its reply stopped.",
                      on_click=lambda: st.session_state.update(action=("continue",)))
        if len(versions) > 1 and len(shown) == 1:
            now_shown = shown[0]
            earlier, later = versions[max(now_shown - 1, 0)], versions[min(now_shown + 1, len(versions) - 1)]
            st.button("", icon=":material/chevron_left:", type="tertiary", key="version_previous",
                      disabled=now_shown == 0, help="Show the earlier version of this reply",
                      on_click=change, args=(turns.show_version, db, cid, earlier["id"]))
            st.caption(version_label(now_shown, len(versions)), width="content")
            st.button("", icon=":material/chevron_right:", type="tertiary", key="version_next",
                      disabled=now_shown == len(versions) - 1, help="Show the later version of this reply",
                      on_click=change, args=(turns.show_version, db, cid, later["id"]))


# ---------------------------------------------------------------- a new message (a fragment run)
def unsent(out: outbox.Outgoing) -> None:
    """A message the database did not take: the fault in one sentence, the words, and Send again."""
    st.error(out.problem or "The chat database did not take your message.", icon=":material/error:")
    if not out.saved:
        with st.chat_message("user"):
            render.message_body(out.prompt)
    st.button("Send again", icon=":material/send:", key="send_again",
              on_click=lambda: st.session_state.update(resend=True),
              help="Your message is kept in this tab until the database takes it.")


@st.fragment
def composer() -> None:
    """The input and the new turn. Only this part reruns on Send, so a long history above it is not
    redrawn before the first token."""
    prompt = st.session_state.pop("pending_prompt", None)
    # A message the database could not take stays here (never lost) until Send again delivers it.
    out: outbox.Outgoing | None = st.session_state.get("outgoing")
    resend = st.session_state.pop("resend", False) and out is not None
    body = st.container()  # drawn above the input, filled after it: the input (and its Stop) is live meanwhile
    st.chat_input("Ask anything", key="prompt", submit_mode="stop",
                  on_submit=lambda: st.session_state.update(pending_prompt=st.session_state.prompt))
    if prompt is not None and prompt.strip():
        out = outbox.Outgoing(prompt, st.session_state.get("open_cid"))
    elif not resend:
        if out is not None:
            with body:
                unsent(out)
        return
    with body:
        try:
            if out.conversation_id is not None and not out.saved:
                # Messages saved since the page was last drawn in full (e.g. a reply that was stopped).
                for row in db.messages(out.conversation_id):
                    if row["position"] > shown_upto:
                        render.message(row, tz=tz)
            new = outbox.deliver(db, out, providers()[model_id.provider], pricer(), settings, **turn_options)
        except StoreError:
            new = None
        if out.conversation_id is not None and st.session_state.get("open_cid") != out.conversation_id:
            st.session_state.open_cid = out.conversation_id
            st.query_params["c"] = out.conversation_id
        if new is None:
            st.session_state.outgoing = out
            unsent(out)
            return
        st.session_state.pop("outgoing", None)
        try:
            with new.running():
                with st.chat_message("user"):
                    render.message_body(out.prompt)
                stream_reply(new)
        except StoreError as exc:  # the reply streamed but could not be saved; a later start marks it interrupted
            st.error(str(exc), icon=":material/error:")

composer()

if not faults:  # what the next send would cost, under the input; last, so the input is painted first (the
    # first estimate after a start waits for the price data and token encodings, ~1 s)
    # Counting the history takes ~25 ms at 100 messages: done again only when the chat or the settings change.
    asked = (cid, shown_upto, rows[-1]["updated_at"] if rows else None, settings)
    held = st.session_state.get("_next_cost")
    if held is None or held[0] != asked:
        held = st.session_state["_next_cost"] = (asked, turns.next_cost(pricer(), settings, rows))
    st.bottom.caption(next_cost_line(held[1]))
