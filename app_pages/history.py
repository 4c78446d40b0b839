"""The History page: find any past conversation, read it, export it, and see what was spent.

Every filter, the search text, the page and the tab live in the URL (widgets bound to query parameters), so
a filtered view is a link to share. ``open`` names the conversation shown below the table.
"""

from __future__ import annotations

import functools
import hashlib
import math
from datetime import date

import pandas as pd
import streamlit as st

from chat.display import format_tokens, stopped_or_failed, stored_time, title_text, total_cost_text, totals_line
from chat.history import charts, filtering
from chat.history.analytics import summary, usage_by_model_and_day, usage_by_user
from chat.history.export import conversation_json, conversation_markdown, settings_lines, table_csv
from chat.history.listing import (
    PAGE_SIZE,
    count_conversations,
    day_bounds,
    filter_options,
    get_conversation,
    list_conversations,
)
from chat.history.search import WINDOW, Ranked, highlight_markdown, rank, search_page
from chat.safe_text import escape_markdown
from chat.store import SOURCES, STATUSES, Filters, StoreError
from ui import render
from ui.page import context

SEARCH_PAGE_SIZE = 20
EARLIEST = date(2000, 1, 1)

_, db, viewer = context()
# Whose conversations this page shows: your own; an analyst's scope is None (everyone's), with a user filter.
# Continuing, deleting and restoring stay with the owner.
scope: str | None = viewer.scope

# What this page keeps in the session from one run to the next (besides its widgets' own keys)
UNDO = "undo"  # the conversation just deleted, offered back with Undo
FILTERS_CHANGED = "filters_changed"  # set by a filter's callback: an open transcript is checked against them
SCROLL_TO_OPEN = "scroll_to_open"  # a conversation was just opened: its transcript is brought into view
SELECTED = "selected"  # the table row last selected (a new selection opens its conversation)


# ---------------------------------------------------------------- actions (callbacks run before the page)


def first_page() -> None:
    """A filter or the search changed: back to the first page, and an open transcript is checked again."""
    st.session_state["page"] = 1
    st.session_state[FILTERS_CHANGED] = True


def open_conversation(conversation_id: str) -> None:
    st.query_params["open"] = conversation_id
    dismiss_undo()
    st.session_state[SCROLL_TO_OPEN] = True  # the transcript is drawn below the list: bring it into view


def close_conversation() -> None:
    if "open" in st.query_params:
        del st.query_params["open"]


def delete(conversation_id: str) -> None:
    db.soft_delete(conversation_id)
    close_conversation()
    st.session_state[UNDO] = conversation_id
    st.toast("Conversation deleted.", icon=":material/delete:")


def undo_delete(conversation_id: str) -> None:
    db.restore(conversation_id)
    dismiss_undo()
    st.query_params["open"] = conversation_id


def dismiss_undo() -> None:
    st.session_state.pop(UNDO, None)


def restore(conversation_id: str) -> None:
    db.restore(conversation_id)
    close_conversation()
    st.toast("Conversation restored.", icon=":material/restore_from_trash:")


# ---------------------------------------------------------------- helpers


def table_frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame({
        "Title": [title_text(r.get("title")) for r in rows],
        "User": [r["user"] for r in rows],
        "Models": [", ".join(r["models"]) for r in rows],
        "Source": [r["source"] for r in rows],
        "Messages": [r["message_count"] for r in rows],
        "Tokens": [r["tokens"] for r in rows],
        "Cost": [total_cost_text(r["cost"], r["unknown_cost_count"]) for r in rows],
        "Stopped or failed": [stopped_or_failed(r) for r in rows],
        "Last activity (UTC)": pd.to_datetime([r["updated_at"] for r in rows], utc=True),
    })


TABLE_COLUMNS = {
    "Title": st.column_config.TextColumn(width="large"),
    "Messages": st.column_config.NumberColumn(format="localized"),
    "Tokens": st.column_config.NumberColumn(format="localized"),
    "Last activity (UTC)": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
}


def filtered_csv(filters: Filters) -> str:
    """Every conversation matching the filters (made when the download is clicked, on another thread)."""
    return table_csv(list_conversations(db, filters, limit=None))


def search_csv(ranked: Ranked) -> str:
    return table_csv(search_page(db, ranked, limit=len(ranked.hits)), with_match=True)


def view_key(*parts: object) -> str:
    return hashlib.sha1(repr(parts).encode()).hexdigest()[:12]


def pages_for(total: int, size: int) -> int:
    """The page number in use (from the URL or the widget), drawn as a pagination widget."""
    count = max(1, math.ceil(total / size))
    if st.session_state.get("page", 1) > count:
        st.session_state["page"] = count
    return st.pagination(count, key="page", bind="query-params") if count > 1 else 1


@st.cache_data(show_spinner="Adding up the replies…", max_entries=16, ttl=3600)
def usage(_store, db_key: str, filters: Filters, cards_key: tuple) -> tuple[list[dict], list[dict], list[dict]]:
    """Per day, model and user. Cached until the cards change (any reply, delete or restore changes them)."""
    by_day, by_model = usage_by_model_and_day(_store, filters)
    return by_day, by_model, usage_by_user(_store, filters)


# ---------------------------------------------------------------- drawing


def search_hit(row: dict) -> None:
    """One conversation found by the search: its title, Open, the matching snippet and its facts."""
    with st.container(border=True, gap="xsmall"):
        with st.container(horizontal=True, vertical_alignment="center"):
            st.markdown(f"**{escape_markdown(title_text(row.get('title')))}**", width="stretch")
            st.button("Open", key=f"open-{row['id']}", icon=":material/open_in_full:",
                      on_click=open_conversation, args=(row["id"],), type="tertiary")
        if row["snippet"]:
            st.markdown(highlight_markdown(row["snippet"]))
        meta = [escape_markdown(row["user"]), escape_markdown(", ".join(row["models"])) or "no replies",
                row["source"], f"{row['message_count']:,} messages", totals_line(row),
                f"last active {stored_time(row['updated_at'])}"]
        if row["hits"] > 1:
            meta.insert(3, f"{row['hits']} matching messages")
        st.caption(" · ".join(meta))


def transcript(conversation: dict) -> None:
    """The open conversation: its facts, what its owner can do with it, exports, its settings and its
    messages (a long one opens on its latest)."""
    cid = conversation["id"]
    deleted = conversation["deleted_at"] is not None
    st.subheader(escape_markdown(title_text(conversation.get("title"))), anchor=False)
    facts = [escape_markdown(conversation["user"]), conversation["source"],
             f"started {stored_time(conversation['created_at'])}",
             f"last active {stored_time(conversation['updated_at'])}", totals_line(conversation)]
    if problems := stopped_or_failed(conversation):
        facts.append(problems)
    st.caption(" · ".join(facts))
    messages = db.messages(cid, include_superseded=True)
    owner = viewer.can_change(conversation["user"])
    with st.container(horizontal=True):
        if deleted and owner:
            st.button("Restore", icon=":material/restore_from_trash:", type="primary",
                      on_click=restore, args=(cid,))
        elif owner and st.button("Continue in chat", icon=":material/chat:", type="primary"):
            st.switch_page("app_pages/chat.py", query_params={"c": cid})
        # built when clicked, not on every run: a long conversation's export is large
        st.download_button("Export Markdown",
                           data=functools.partial(conversation_markdown, conversation, messages),
                           file_name=f"conversation-{cid[:8]}.md", mime="text/markdown",
                           icon=":material/download:", on_click="ignore")
        st.download_button("Export JSON",
                           data=functools.partial(conversation_json, conversation, messages),
                           file_name=f"conversation-{cid[:8]}.json", mime="application/json",
                           icon=":material/data_object:", on_click="ignore")
        if any(m.get("attachments") for m in messages):
            st.download_button("Export JSON with files",
                               data=functools.partial(conversation_json, conversation, messages,
                                                      db.blob),
                               file_name=f"conversation-{cid[:8]}-files.json", mime="application/json",
                               icon=":material/attach_file:", on_click="ignore")
        if owner and not deleted:
            st.button("Delete", icon=":material/delete:", on_click=delete, args=(cid,))
        st.button("Close", type="tertiary", on_click=close_conversation)
    if not owner:
        st.caption(f"Only {escape_markdown(conversation['user'])} can continue, delete or restore "
                   "this conversation.")
    if deleted:
        st.info(f"This conversation was deleted on {stored_time(conversation['deleted_at'])}. "
                "Restore it to see it in lists and search again.")
    replies = [m for m in messages if m["role"] == "assistant"]
    with st.expander("System prompt and parameters"):
        used = conversation["settings"] or {}
        st.markdown("**Last used**")
        st.code("\n".join(settings_lines(used)) or "(none recorded)", language=None,
                wrap_lines=True)
        per_reply = [{"Reply": i, "Model": f"{m['provider']}:{m['model']}",
                      "Temperature": (m["settings"] or {}).get("temperature"),
                      "Max output tokens": (m["settings"] or {}).get("max_tokens"),
                      "System prompt": (m["settings"] or {}).get("system") or ""}
                     for i, m in enumerate(replies, 1)]
        if per_reply:
            st.markdown("**Each reply**")
            st.dataframe(pd.DataFrame(per_reply), hide_index=True)
    visible = [m for m in messages if not m["superseded"]]
    if not visible:
        st.caption("No messages yet.")
    hidden = render.earlier_messages(len(visible), f"history-drawn-{cid}")  # exports stay whole
    tz = render.viewer_timezone()
    for message in visible[hidden:]:
        render.message(message, db.blob, tz=tz)


def analytics(filters: Filters) -> None:
    """Cards, daily charts and the tables by model and by user, for the conversations matching ``filters``."""
    cards = summary(db, filters)
    with st.container(horizontal=True):
        st.metric("Conversations", f"{cards['conversations']:,}", border=True)
        st.metric("Messages", f"{cards['messages']:,}", border=True)
        st.metric("Tokens", format_tokens(cards["tokens"]), border=True)
        unknown = cards["unknown_cost_count"]
        if unknown == 1:
            cost_help = "One reply has no known price and is not counted."
        elif unknown:
            cost_help = f"{unknown:,} replies have no known price and are not counted."
        else:
            cost_help = "Every reply has a known price."
        st.metric("Cost", total_cost_text(cards["cost"], unknown), border=True, help=cost_help)
    if not cards["conversations"]:
        st.info("No conversations match these filters.")
    else:
        by_day, by_model, by_user = usage(db, str(db.path), filters, tuple(sorted(cards.items())))
        st.caption("Whole conversations matching the filters above (the search text does not apply here); "
                   "replies are counted on the UTC day they were sent.")
        if by_day:
            days = pd.DataFrame(by_day)
            days["day"] = days["day"].astype(str).str[:10]
            left, right = st.columns(2)
            with left:
                st.markdown("**Cost per day by model** (USD, priced replies)")
                st.vega_lite_chart(days, charts.daily_bars(list(days["day"]), field="cost", title="Cost",
                                                           value_format="$.4~f"), width="stretch")
            with right:
                st.markdown("**Tokens per day by model**")
                st.vega_lite_chart(days, charts.daily_bars(list(days["day"]), field="tokens", title="Tokens",
                                                           value_format=",d"), width="stretch")
        st.markdown("**By model**")
        st.dataframe(pd.DataFrame({
            "Model": [m["model"] for m in by_model],
            "Replies": [m["replies"] for m in by_model],
            "Tokens": [m["tokens"] for m in by_model],
            "Cost": [total_cost_text(m["cost"], m["unknown_cost"]) for m in by_model],
            "Median time to first token (s)": [m["median_ttft"] for m in by_model],
            "Median tokens/s": [m["median_tokens_per_second"] for m in by_model],
        }), hide_index=True, column_config={
            "Replies": st.column_config.NumberColumn(format="localized"),
            "Tokens": st.column_config.NumberColumn(format="localized"),
            "Median time to first token (s)": st.column_config.NumberColumn(format="%.2f"),
            "Median tokens/s": st.column_config.NumberColumn(format="%.0f"),
        })
        st.markdown("**By user**")
        st.dataframe(pd.DataFrame({
            "User": [u["user"] for u in by_user],
            "Conversations": [u["conversations"] for u in by_user],
            "Messages": [u["messages"] for u in by_user],
            "Tokens": [u["tokens"] for u in by_user],
            "Cost": [total_cost_text(u["cost"], u["unknown_cost_count"]) for u in by_user],
        }), hide_index=True, column_config={
            "Conversations": st.column_config.NumberColumn(format="localized"),
            "Messages": st.column_config.NumberColumn(format="localized"),
            "Tokens": st.column_config.NumberColumn(format="localized"),
        })


# ---------------------------------------------------------------- filters (shared by both tabs)

st.title("History")

undone = st.session_state.get(UNDO)
if undone:
    deleted_row = db.get_conversation(undone, include_deleted=True)
    if deleted_row is not None and deleted_row["deleted_at"]:
        with st.container(border=True, horizontal=True, vertical_alignment="center"):
            st.markdown(f"Deleted **{escape_markdown(title_text(deleted_row.get('title')))}**.")
            st.button("Undo", icon=":material/undo:", on_click=undo_delete, args=(undone,))
            st.button("Dismiss", type="tertiary", on_click=dismiss_undo)
    else:
        dismiss_undo()

options = filter_options(db, scope)
with st.container(horizontal=True, vertical_alignment="bottom"):
    since = st.date_input("From", value=None, min_value=EARLIEST, key="from", bind="query-params", width=150,
                          on_change=first_page, format="YYYY-MM-DD", help="Last activity on or after this day (UTC).")
    until = st.date_input("To", value=None, min_value=EARLIEST, key="to", bind="query-params", width=150,
                          on_change=first_page, format="YYYY-MM-DD", help="Last activity on or before this day (UTC).")
    provider = st.selectbox("Provider", options["providers"], index=None, placeholder="Any", key="provider",
                            bind="query-params", on_change=first_page, width=150)
    models = [m for m in options["models"] if provider is None or m.startswith(f"{provider}:")]
    model = st.selectbox("Model", models, index=None, placeholder="Any", key="model_id", bind="query-params",
                         on_change=first_page, width=240)
    status = st.selectbox("Replies", list(STATUSES), index=None, placeholder="Any", key="status",
                          bind="query-params", on_change=first_page, width=170, help="Conversations with "
                          "replies that were stopped, failed (or were interrupted), or either.")
    source = st.selectbox("Source", list(SOURCES), index=None, placeholder="Any", key="source",
                          bind="query-params", on_change=first_page, width=120)
    chosen_user = None
    if scope is None:
        chosen_user = st.selectbox("User", options["users"], index=None, placeholder="Anyone", key="user",
                                   bind="query-params", on_change=first_page, width=200)
    show_deleted = st.toggle("Deleted", key="deleted", bind="query-params", on_change=first_page,
                             help="Show only deleted conversations, to restore them.")

since, until = day_bounds((since, until))
filters = Filters(user=scope if scope is not None else chosen_user, since=since, until=until, provider=provider,
                  model=model, status=status, source=source, deleted=show_deleted)

# A transcript left open that a changed filter (or search) no longer matches is closed.
filters_changed = st.session_state.pop(FILTERS_CHANGED, False)
if filters_changed and st.query_params.get("open"):
    opened = get_conversation(db, st.query_params["open"], user=scope)
    if opened is None or not filtering.matches(filters, opened):
        close_conversation()

conversations_tab, analytics_tab = st.tabs(["Conversations", "Analytics"], key="tab", bind="query-params")

# ---------------------------------------------------------------- conversations

if conversations_tab.open:
    with conversations_tab:
        query = st.text_input("Search", key="q", bind="query-params", on_change=first_page,
                              placeholder='Search every message: words, "a phrase", OR, NOT, prefix*',
                              label_visibility="collapsed", icon=":material/search:", persist_state="page")
        # Results scroll in a box of their own, so a conversation opened from them shows up close by
        listing = st.container(height=460 if query.strip() else "content", border=False)
        paging = st.container()
        ranked, hits, search_fault = None, [], None
        if query.strip():
            try:
                ranked = rank(db, query, filters)
                if not ranked.problem:
                    with paging:
                        page = pages_for(len(ranked.hits), SEARCH_PAGE_SIZE)
                    hits = search_page(db, ranked, limit=SEARCH_PAGE_SIZE,
                                       offset=(page - 1) * SEARCH_PAGE_SIZE)
            except StoreError as exc:  # the database failed under the search: said here, the rest works
                search_fault = f"Search failed: {exc}"
        if (filters_changed and ranked is not None and not ranked.problem and st.query_params.get("open")
                and st.query_params["open"] not in {hit[0] for hit in ranked.hits}):
            close_conversation()
        if search_fault:
            with listing:
                st.error(search_fault, icon=":material/error:")
            csv_rows = None
        elif ranked is not None and ranked.problem:  # too large, too slow, or a damaged index: say so
            with listing:
                st.warning(ranked.problem, icon=":material/search_off:")
            csv_rows = None
        elif ranked is not None:
            with listing:
                found = len(ranked.hits)
                note = f"{found:,} conversation{'' if found == 1 else 's'} found"
                if ranked.windowed:
                    note += (f" among the newest {WINDOW:,} matching messages; narrow the dates to reach "
                             "older ones")
                if ranked.ranked_by == "recency":
                    note += "; every word is very common, so the newest come first"
                if ranked.ignored:
                    note += f"; left out as too common: {escape_markdown(', '.join(ranked.ignored))}"
                if ranked.plain:
                    note += ". Searched as plain words (quotes or operators did not parse)"
                st.caption(note + ".")
                if not found:
                    st.info("No message matches that search with these filters.")
                for row in hits:
                    search_hit(row)
            csv_rows = functools.partial(search_csv, ranked)
        else:
            total = count_conversations(db, filters)
            with paging:
                page = pages_for(total, PAGE_SIZE)
            rows = list_conversations(db, filters, offset=(page - 1) * PAGE_SIZE)
            with listing:
                st.caption(f"{total:,} {'deleted ' if show_deleted else ''}conversation{'' if total == 1 else 's'}"
                           f"{'' if total <= len(rows) else f', {PAGE_SIZE} a page'}. "
                           "Select a row to read it.")
                if rows:
                    key = "table-" + view_key(filters, page, ids_shown := [r["id"] for r in rows])
                    event = st.dataframe(table_frame(rows), key=key, on_select="rerun",
                                         selection_mode="single-row", hide_index=True, column_config=TABLE_COLUMNS)
                    selected = event.selection.rows
                    chosen = ids_shown[selected[0]] if selected and selected[0] < len(rows) else None
                    if chosen != st.session_state.get(SELECTED):
                        st.session_state[SELECTED] = chosen
                        if chosen is not None:
                            open_conversation(chosen)
                else:
                    st.info("No conversations match these filters." if not show_deleted
                            else "No deleted conversations match these filters.")
            csv_rows = functools.partial(filtered_csv, filters)
        if csv_rows is not None:
            st.download_button("Download table (CSV)", data=csv_rows, file_name="conversations.csv",
                               mime="text/csv", icon=":material/download:", on_click="ignore", type="tertiary")

        # -------------------------------------------------------- the open conversation
        open_id = st.query_params.get("open")
        if open_id:
            conversation = get_conversation(db, open_id, user=scope)
            st.divider()
            if st.session_state.pop(SCROLL_TO_OPEN, False):
                render.scroll_here(key=f"scroll-{open_id}")
            if conversation is None:
                st.warning("That conversation was not found. The link may be wrong, or it was deleted for good.")
                st.button("Close", on_click=close_conversation)
            else:
                transcript(conversation)

# ---------------------------------------------------------------- analytics

if analytics_tab.open:
    with analytics_tab:
        analytics(filters)
