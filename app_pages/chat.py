"""The chat page: history from SQLite, a streamed reply, a stop that closes the upstream, figures per reply."""

from __future__ import annotations

import streamlit as st

from chat import attachments, live, outbox, turns
from chat.config import parse_model_id
from chat.display import ending, next_cost_line, title_text, totals_line, version_label
from chat.history.search import search
from chat.mcp_servers import LIST_TIMEOUT
from chat.providers import Params
from chat.safe_text import escape_markdown, plain_sentence
from chat.store import Filters, StoreError, title_from
from chat.tool_loop import ToolRunner
from ui import render, stream, widgets
from ui.page import context
from ui.resources import catalog, pricer, providers, toolbox

cfg, db, viewer = context()
user = viewer.user
models = catalog()
available = models.models()  # what the endpoints serve (configured ones pinned), or the configured lists

# What this page keeps in the session from one run to the next (besides its widgets' own keys)
OPEN = "open_cid"  # the conversation the settings widgets were last set from
ACTION = "action"  # a click under the last message (Regenerate, Edit, Continue), done by the next full run
REDRAW = "_redraw"  # a click under the last message that only changes what is shown: a full run draws it
PROMPT = "pending_prompt"  # what the chat input gave, copied in its callback (a disabled input drops it)
OUTGOING = "outgoing"  # a message not sent yet, kept in this tab (an outbox.Outgoing)
RESEND = "resend"  # Send again (with its files, or without them)
UNDO = "chat_undo"  # the chat just deleted, offered back with Undo
FOLLOWED = "_followed"  # the composer is following a reply (the full run after it ends draws it settled)
NEXT_COST = "_next_cost"  # the cost of the next send, with what it was counted for

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
if conversation is not None and not viewer.can_change(conversation["user"]):
    conversation = None
if cid and conversation is None and not faults:
    st.warning("That conversation was not found. It may have been deleted, or the link is wrong.")
    del st.query_params["c"]
    cid = None


def restore_settings(used: dict) -> None:
    """Opening a conversation sets the settings widgets to what it was last used with (an empty value: the
    widget is left empty)."""
    values = turns.settings_to_restore(used, cfg, served=available, model_default=widgets.MODEL_DEFAULT)
    for key, value in values.items():
        if value is None:
            st.session_state.pop(key, None)
        else:
            st.session_state[key] = value


if st.session_state.get(OPEN) != cid:
    st.session_state[OPEN] = cid
    restore_settings((conversation or {}).get("settings") or {})


# ---------------------------------------------------------------- what a click does (run before the next run)


def save_tools(conversation_id: str | None) -> None:
    """The tool choice is part of the conversation's settings as soon as it changes (it survives a refresh)."""
    if not conversation_id:
        return
    try:
        current = db.get_conversation(conversation_id)
        if current is not None:
            chosen = list(st.session_state.get("tools") or [])
            db.update_conversation(conversation_id, settings={**(current.get("settings") or {}), "tools": chosen})
    except StoreError as exc:
        faults.append(f"{exc} The tool choice applies to this tab until it can be saved.")


def new_chat() -> None:
    st.query_params.clear()
    st.session_state[OPEN] = None
    st.session_state.pop(ACTION, None)


def open_chat(conversation_id: str) -> None:
    st.query_params["c"] = conversation_id


def change(fn, *args, **kwargs) -> bool:
    """A database change from a button: a fault is said in one toast, nothing else happens."""
    try:
        fn(*args, **kwargs)
    except StoreError as exc:
        st.toast(str(exc), icon=":material/error:")
        return False
    return True


def rename(conversation_id: str) -> None:
    title = " ".join((st.session_state.get(f"title-{conversation_id}") or "").split())
    if title:
        change(db.update_conversation, conversation_id, title=title)
    st.session_state["rename_open"] = False


def delete_chat(conversation_id: str) -> None:
    if change(db.soft_delete, conversation_id):
        st.session_state[UNDO] = conversation_id
        new_chat()


def undo_delete(conversation_id: str) -> None:
    dismiss_undo()
    change(db.restore, conversation_id)
    open_chat(conversation_id)


def dismiss_undo() -> None:
    st.session_state.pop(UNDO, None)


def stop_reply(conversation_id: str) -> None:
    """The Stop button: the reply is stopped at once; this run then draws it settled (its partial text,
    figures with "stopped by you", Retry, totals)."""
    running = live.replies.running(conversation_id)
    if running is not None:
        running.stop()
        running.wait(1.0)


def send_again(with_files: bool = True) -> None:
    st.session_state[RESEND] = "with files" if with_files else "without files"


def discard() -> None:
    st.session_state.pop(OUTGOING, None)


def keep_prompt() -> None:
    """The chat input's callback: what it gave, kept for this run (a disabled input would drop it)."""
    st.session_state[PROMPT] = st.session_state.prompt


def show_version(message_id: int) -> None:
    change(turns.show_version, db, cid, message_id)
    st.session_state[REDRAW] = True


def ask(*what) -> None:
    """Regenerate, Continue: done by the next full run."""
    st.session_state[ACTION] = what


def resend_edited(edit_key: str) -> None:
    """Resend in the Edit box: the edited message replaces the last one (the next full run sends it)."""
    ask("edit", st.session_state[edit_key])
    st.session_state[f"{edit_key}-open"] = False


# ---------------------------------------------------------------- sidebar: the conversations and the settings


def chat_button(conv: dict, key: str) -> None:
    label = escape_markdown(title_from(title_text(conv["title"]), 40))
    st.button(label, key=key, type="tertiary", disabled=conv["id"] == cid, on_click=open_chat, args=(conv["id"],))


@st.fragment(run_every=1.0)
def tools_connecting(names: list[str]) -> None:
    """Chosen tool servers still being listed, said so under the picker (the chat works meanwhile: a reply
    waits for them on its own thread); once they are all listed or failed, the page is drawn again with their
    tools or the reason."""
    still = toolbox().tools(names, wait=0)[2]
    if not still:
        st.rerun()
    for name in still:
        server = cfg.mcp_server(name)
        st.caption(f":material/hourglass_top: {escape_markdown(server.label if server else name)}: connecting…",
                   help="Its tools are being listed; a server that does not answer within "
                        f"{LIST_TIMEOUT:.0f} s is reported. Refresh tools asks again.")


with st.sidebar:
    st.button("New chat", icon=":material/add:", on_click=new_chat, use_container_width=True)
    chosen_tools: list[str] = []
    if available:
        model_id = parse_model_id(widgets.model_picker("Model", available, key="model", default=cfg.initial_model()))
        caps_now = models.capabilities(model_id.provider, model_id.model, window=False)  # a turn asks the window
        with st.expander("Settings"):
            temperature = widgets.temperature(key="temperature",
                                              adjustable=widgets.takes_temperature(cfg, model_id))
            max_tokens = widgets.max_tokens(key="max_tokens")
            reasoning_choices = widgets.reasoning(caps_now,
                                                  thinking=cfg.endpoint(model_id.provider).kind == "anthropic",
                                                  effort_key="reasoning_effort", thinking_key="thinking")
            system = widgets.system_prompt(key="system")
        if cfg.mcp_servers:
            labels = {s.name: s.label for s in cfg.mcp_servers}
            st.session_state.tools = [n for n in st.session_state.get("tools") or [] if n in labels]
            chosen_tools = st.multiselect(
                "Tools", list(labels), key="tools", format_func=labels.__getitem__, placeholder="none",
                on_change=save_tools, args=(cid,),
                help="The MCP servers whose tools the model may use in this chat. Tools a server does not mark "
                     "read-only ask you before they run.")
            if chosen_tools:  # listed in the background: a server still connecting is said so
                _, tool_errors, connecting = toolbox().tools(chosen_tools)
                for problem in tool_errors:
                    st.warning(plain_sentence(problem.hint), icon=":material/build:")
                if connecting:
                    tools_connecting(connecting)
            st.button("Refresh tools", icon=":material/sync:", type="tertiary", on_click=toolbox().refresh,
                      help="Ask the tool servers again which tools they offer (and try again those that failed).")
        failed = models.failures()
        st.button("Refresh models", icon=":material/sync:", type="tertiary", on_click=models.refresh,
                  help="Ask each provider again which models it serves."
                  + (f" Last time {', '.join(sorted(failed))} did not say; the configured list is shown."
                     if failed else ""))
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
    undone = st.session_state.get(UNDO)
    deleted = read(db.get_conversation, undone, include_deleted=True) if undone else None
    if deleted is not None and deleted["deleted_at"]:
        with st.container(border=True):
            st.caption(f"Deleted {escape_markdown(title_from(title_text(deleted['title']), 40))}.")
            with st.container(horizontal=True, gap="small"):
                st.button("Undo", icon=":material/undo:", key="undo_delete", on_click=undo_delete, args=(undone,))
                st.button("Dismiss", type="tertiary", key="dismiss_undo", on_click=dismiss_undo)
    elif undone:
        dismiss_undo()
    search_text = st.text_input("Search your chats", key="chat_search", placeholder="Search your chats",
                                label_visibility="collapsed", icon=":material/search:")
    if search_text.strip():
        found = read(search, db, search_text, Filters(user=user), limit=15)
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
    widgets.provider_setup()

# ---------------------------------------------------------------- what this run does
settings = turns.TurnSettings(model_id=model_id, system=system,
                              params=Params(temperature=temperature, max_tokens=max_tokens, **reasoning_choices),
                              tools=tuple(chosen_tools))
# one runner per turn (a run starts at most one): the chosen servers' tools (the reply waits for a listing still
# under way, not the page), the step limit
tool_runner = ToolRunner(toolbox(), servers=settings.tools, max_steps=cfg.tool_steps) if settings.tools else None

# what every turn this page starts runs with: the store, the providers (each built on first use), the limits
contexts = turns.TurnContexts.configured(cfg, db, providers(), pricer(), user=user,
                                         capabilities=models.capabilities_of)


def turn_context() -> turns.TurnContext:
    """What a turn started by this run runs with (the provider is built when a turn starts, not on first paint)."""
    return contexts.for_model(model_id, tools=tool_runner)


def files_problem(files: tuple) -> str | None:
    """Why these files cannot go with a message to the chosen model (limits, what it reads), or None."""
    try:
        attachments.check(files, limits=contexts.file_limits, model=model_id.model, image_input=caps_now.image_input,
                          pdf_input=caps_now.pdf_input)
    except attachments.AttachmentError as exc:
        return exc.hint
    return None


action = st.session_state.pop(ACTION, None)
if action and cid:  # Regenerate, Retry, Edit, Continue: a new reply, owned by the conversation
    ctx = turn_context()
    try:
        if live.replies.running(cid) is not None:
            raise live.ReplyInProgress()
        attachments.check_readable(turns.files_sent(db, cid), model=model_id.model,  # by the model now chosen
                                   image_input=caps_now.image_input, pdf_input=caps_now.pdf_input)
        db.update_conversation(cid, settings=settings.as_dict())
        turn = None
        if action[0] == "edit" and action[1].strip():
            turn = turns.edit_last(ctx, cid, action[1], settings)
        elif action[0] == "regenerate":
            turn = turns.regenerate(ctx, cid, settings)
        elif action[0] == "continue":
            turn = turns.send(ctx, cid, turns.CONTINUE_PROMPT, settings)
        if turn is not None:
            live.replies.start(turn, grace=live.START_GRACE)
    except StoreError as exc:  # nothing is lost: the edited text stays in its box, the buttons stay
        faults.append(f"{exc} Nothing was sent; try again in a moment.")
    except live.ReplyInProgress as exc:
        faults.append(str(exc))
    except attachments.AttachmentError as exc:
        faults.append(f"{exc.hint} Nothing was sent.")


def take_message(conversation_id: str | None) -> tuple[str | None, bool]:
    """The message the chat input just gave (or Send again): saved before any provider call and its reply
    started, or kept in this tab (never lost) until Send again delivers it, saved once. Returns the
    conversation it went to (a new one for a new chat) and whether the page needs a full run to show what
    happened (a message kept back, a database fault)."""
    submitted = st.session_state.pop(PROMPT, None)
    prompt = getattr(submitted, "text", submitted)  # with files, the chat input gives text and files together
    uploads = list(getattr(submitted, "files", None) or [])
    out: outbox.Outgoing | None = st.session_state.get(OUTGOING)
    resend = st.session_state.pop(RESEND, None)
    go = out is not None and resend is not None and outbox.send_again(
        out, with_files=resend == "with files", check=files_problem)
    if (prompt and prompt.strip()) or uploads:
        files, unreadable = widgets.read_uploads(uploads)
        out = outbox.submitted(prompt or "", conversation_id, files, unreadable, check=files_problem)
        if out.held:  # nothing saved or sent: the words and the files that could be read stay for Send again
            st.session_state[OUTGOING] = out
            return conversation_id, True
        go = True
    if out is None or not go:
        return conversation_id, False
    new = outbox.send(turn_context(), out, settings)
    if new is None:
        st.session_state[OUTGOING] = out
    else:
        st.session_state.pop(OUTGOING, None)
    went_to = (out if new is None else new).conversation_id
    if went_to is not None and went_to != conversation_id:  # a new conversation: it is in the URL now
        st.session_state[OPEN] = went_to
        st.query_params["c"] = went_to
    return went_to, new is None


# ---------------------------------------------------------------- the conversation


def unsent_buttons(out: outbox.Outgoing) -> None:
    """Under a message whose reply has not started: Send again; for one held for its files (it waits for the
    user: another model, or files removed), also Send without files and Discard. A message the database
    refused is saved in the background as soon as it takes it."""
    cols = st.columns([1, 1, 4]) if out.held else [st]
    cols[0].button("Send again", icon=":material/send:", key="send_again", on_click=send_again,
                   help="Your message and its files are kept in this tab until they can go.")
    if out.held:
        if out.files:
            cols[1].button("Send without files", icon=":material/attach_file_off:", key="send_bare",
                           disabled=not out.prompt.strip(), on_click=send_again, args=(False,))
        cols[2].button("Discard", icon=":material/delete:", type="tertiary", key="discard", on_click=discard)


def reply_actions() -> None:
    """Under the last message: Regenerate (or Retry), Edit, Continue and the reply's versions. Their clicks
    are handled by a full run (ACTION, REDRAW)."""
    visible = [r for r in rows if not r.get("superseded")]
    if not visible:
        return
    last = visible[-1]
    last_user = next((r for r in reversed(visible) if r["role"] == "user"), None)
    end = ending(last) if last["role"] == "assistant" else None
    retry = last["role"] == "user" or end.action == "retry"
    versions = turns.reply_versions(all_rows) if last["role"] == "assistant" else []
    shown = [i for i, v in enumerate(versions) if not v["superseded"]]
    with st.container(horizontal=True, vertical_alignment="center", gap="small"):
        st.button("Retry" if retry else "Regenerate", icon=":material/refresh:", type="tertiary",
                  help=None if retry else "Ask again; the earlier reply stays a click away.",
                  on_click=ask, args=("regenerate",))
        if last_user is not None:
            edit_key = f"edit-{last_user['id']}"
            with st.popover("Edit", icon=":material/edit:", type="tertiary", key=f"{edit_key}-open",
                            on_change="rerun"):
                st.text_area("Your last message", value=last_user["content"], key=edit_key)
                st.button("Resend", type="primary", on_click=resend_edited, args=(edit_key,))
        if end is not None and end.action == "continue":
            st.button("Continue", icon=":material/fast_forward:", type="tertiary",
                      help="Ask the model to go on from where its reply stopped.",
                      on_click=ask, args=("continue",))
        if len(versions) > 1 and len(shown) == 1:
            now_shown = shown[0]
            earlier, later = versions[max(now_shown - 1, 0)], versions[min(now_shown + 1, len(versions) - 1)]
            st.button("", icon=":material/chevron_left:", type="tertiary", key="version_previous",
                      disabled=now_shown == 0, help="Show the earlier version of this reply",
                      on_click=show_version, args=(earlier["id"],))
            st.caption(version_label(now_shown, len(versions)), width="content")
            st.button("", icon=":material/chevron_right:", type="tertiary", key="version_next",
                      disabled=now_shown == len(versions) - 1, help="Show the later version of this reply",
                      on_click=show_version, args=(later["id"],))


tz = render.viewer_timezone()
all_rows = (read(db.messages, cid, include_superseded=True, default=[]) if cid else [])  # with earlier versions
rows = [r for r in all_rows if not r["superseded"]]
out = st.session_state.get(OUTGOING)  # a message not sent yet (kept in this tab)
said = out.problem if out is not None and not out.saved else None  # the unsent message below says it
if faults and faults[0] != said:
    st.error(faults[0], icon=":material/error:")
running = live.replies.running(cid)
# a reply another app process is writing (several replicas share the store): followed from its checkpoints
elsewhere = None if running else next((r for r in rows if r.get("status") == "streaming"), None)
streaming_id = running.message_id if running else elsewhere["id"] if elsewhere else None

if not rows:
    st.caption(f"Talking to **{model_id}**. Ask anything below.")
hidden = render.earlier_messages(len(rows), f"drawn-{cid}")  # a long conversation opens on its latest
for row in rows[hidden:]:
    if row["id"] != streaming_id:
        render.message(row, db.blob, tz=tz)
if out is not None:
    render.unsent(out)
    unsent_buttons(out)


actions_area = st.empty()  # the actions under the last message: drawn by the composer below
turn_area = st.empty()  # the turn being written: drawn by the composer below
drawn = {r["id"] for r in rows}
last_position = max((r["position"] for r in all_rows), default=None) if cid else None
st.session_state.pop(FOLLOWED, None)  # this full run draws every reply that has settled


@st.fragment
def composer() -> None:
    """The pinned input and the turn it starts. Sending runs only this fragment: the new message and its
    reply are drawn under the conversation without drawing the conversation again (which costs the browser
    far more than the new turn). Anything else the send changes is drawn by a full run once the reply
    has settled, or at once when the message was kept back."""
    if st.session_state.get(ACTION) or st.session_state.pop(REDRAW, False):
        st.rerun()  # a click under the last message: handled (and drawn) by a full run
    conversation_id, full_run = take_message(cid)
    if full_run:
        st.rerun()  # a message kept back (its sentence and Send again) or a new chat whose reply did not start
    running = live.replies.running(conversation_id)
    busy = running is not None or elsewhere is not None
    # pinned to the window's bottom; while a reply is being written it says so rather than taking a second one
    st.chat_input("A reply is being written…" if busy else "Ask anything, or attach files", key="prompt",
                  disabled=busy, accept_file="multiple", file_type=attachments.FILE_TYPES,
                  on_submit=keep_prompt)
    if not faults and not busy:
        # what the next send would cost (drawn after the input, so the input is painted first: the first
        # estimate after a start waits for the price data and token encodings). Counted again only when the
        # chat or the settings change.
        asked = (cid, len(all_rows), rows[-1]["id"] if rows else None, rows[-1]["updated_at"] if rows else None,
                 settings)
        held = st.session_state.get(NEXT_COST)
        if held is None or held[0] != asked:
            held = st.session_state[NEXT_COST] = (asked, turns.next_cost(pricer(), settings, rows))
        st.caption(next_cost_line(held[1]))
    if busy:
        actions_area.empty()
    else:
        with actions_area.container():
            reply_actions()
    if running is None:
        turn_area.empty()
        if st.session_state.pop(FOLLOWED, None):
            st.rerun()  # the reply this fragment followed has ended (a Stop): drawn settled by a full run
        return
    st.session_state[FOLLOWED] = True
    with turn_area.container():
        sent = st.empty()  # the reply keeps its place whether or not a full run has drawn these since
        new_rows = [row for row in read(db.messages, conversation_id, after_position=last_position, default=[])
                    if row["id"] not in drawn and row["id"] != running.message_id]  # sent since the last full run
        if new_rows:
            with sent.container():
                for row in new_rows:
                    render.message(row, db.blob, tz=tz)
        else:
            sent.empty()
        if not stream.follow_reply(running, on_stop=stop_reply):
            return  # a click in this fragment (Stop, Approve…) waits for this run to end: it runs next
    st.rerun()  # done: the whole page drawn settled, with its figures and totals


with st.bottom:
    composer()
with st.sidebar:
    render.follow_bottom(cid)

if elsewhere is not None:
    stream.follow_stored(db, elsewhere)
    st.rerun()
