"""The compare page: one prompt streamed to 2-4 targets side by side, figures and ranks, votes, batch runs.

How a run streams: the Run click saves the run (one conversation per target) and starts each column's reply
as a live reply of its conversation (:mod:`chat.live`), on a thread of its own. The page follows each column
in an ``@st.fragment(parallel=True)``, side by side; the main thread waits, updating a clock, and reruns the
page once every column has finished, which then draws the saved run with its summary and votes.

Any rerun (a widget, leaving the page) ends only the drawing: the replies go on, and the page follows them
again from where they are. Each column has its own Stop, and the Stop beside Run stops them all; each
closes its upstream at once and saves the partial reply as stopped, and the click's run draws it settled.

Batch mode runs in the main thread: :class:`chat.compare.batch.BatchRun` keeps at most N calls in flight on its
own thread pool, and the progress bar's updates are where a Stop lands; closing the batch generator then
stops the calls in flight (saved as stopped) and skips the rest.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from chat import attachments, live
from chat.compare.batch import (
    MAX_IN_FLIGHT,
    BatchRun,
    batch_csv,
    batch_expected_calls,
    batch_rows,
    batch_rows_settled,
    batch_table,
    batch_totals,
)
from chat.compare.batch_input import csv_columns, prompts_from_csv, prompts_from_text
from chat.compare.ranking import summary_line, summary_rows
from chat.compare.runs import input_estimate, live_row, start_run
from chat.compare.targets import MAX_TARGETS, MIN_TARGETS, CompareError
from chat.compare.views import RunColumn, RunView, anonymise, column_title, load_run
from chat.compare.votes import cast_vote, vote_choices, vote_text
from chat.config import parse_model_id
from chat.display import BLIND_TARGETS, SOME_WRITTEN_ELSEWHERE, blind_figures, column_figures, target_settings_text
from chat.providers import takes_temperature
from chat.safe_text import escape_markdown
from chat.store import StoreError, title_from
from chat.turns import TurnContexts, TurnSettings
from ui import render, stream, widgets
from ui.page import context
from ui.resources import catalog, pricer, providers

cfg, db, viewer = context()
user = viewer.user
available = catalog().models()  # what the endpoints serve (configured ones pinned), or the configured lists
if not available:
    widgets.provider_setup()

# What this page keeps in the session from one run to the next (besides its widgets' own keys)
SHOW_TARGETS = "cmp_show_targets"  # the blind run whose targets the user asked to see in the sidebar
BATCH_STREAMED = "batch_streamed"  # the batch the last run streamed (interrupted: its calls are still stopping)


@dataclass
class Work:
    """What this run follows once both tabs are drawn, and the slots it draws in."""

    clock: Any = None  # the comparison's clock
    streaming: dict[str, str] = field(default_factory=dict)  # a comparison's columns still streaming: label -> id
    batch: BatchRun | None = None  # a batch started by this run
    progress: Any = None  # the batch's progress bar
    table: Any = None  # the batch's results so far


def turn_contexts() -> TurnContexts:
    """What each column's or batch call's turn runs with: the store, the providers, the limits the settings give."""
    return TurnContexts.configured(cfg, db, providers(), pricer(), user=user, capabilities=catalog().capabilities_of)


def open_run(run_id: str | None) -> None:
    if run_id:
        st.query_params["run"] = run_id
    else:
        st.query_params.pop("run", None)


def blind_pending() -> bool:
    """Whether the page shows (or is about to start) a blind comparison nobody has voted on yet: then the
    sidebar does not name the targets either, unless the user asked to see them."""
    if st.session_state.get("cmp_run") and st.session_state.get("cmp_blind"):
        return True
    run_id = st.query_params.get("run")
    if not run_id or st.session_state.get(SHOW_TARGETS) == run_id:
        return False
    try:
        run = db.get_compare_run(run_id)
    except StoreError:
        return False
    return bool(run and viewer.can_change(run["user"]) and run["blind"] and run["vote"] is None)


def show_targets() -> None:
    st.session_state[SHOW_TARGETS] = st.query_params.get("run")


# ---------------------------------------------------------------- targets and parameters (sidebar)
with st.sidebar:
    st.subheader("Targets", divider=False)
    count = st.radio("How many", list(range(MIN_TARGETS, MAX_TARGETS + 1)), horizontal=True,
                     key="cmp_count")
    first = cfg.initial_model()
    defaults = [first] + [m for m in available if m != first] if first in available else available
    hide_targets = blind_pending()
    if hide_targets:
        st.caption(BLIND_TARGETS)
        st.button("Show targets", icon=":material/visibility:", type="tertiary", key="cmp_show",
                  on_click=show_targets,
                  help="Shows which models you chose (not which column is which).")
    models = [widgets.model_picker(f"Target {i + 1}", available, key=f"cmp_model_{i}",
                                   default=defaults[i % len(defaults)], shown=not hide_targets)
              for i in range(count)]
    shared_system = widgets.system_prompt(key="cmp_system")
    synced = st.toggle("Same parameters for every target", value=True, key="cmp_synced")
    targets: list[TurnSettings] = []
    if synced:  # the temperature goes to the targets that take it (a column says where it was not sent)
        temperature = widgets.temperature(key="cmp_temperature")
        max_tokens = widgets.max_tokens(key="cmp_max_tokens")
        targets = [TurnSettings.parse(m, system=shared_system, temperature=temperature, max_tokens=max_tokens)
                   for m in models]
    else:
        for i, model in enumerate(models):
            with st.expander(f"Target {i + 1}" if hide_targets else f"Target {i + 1}: {model}"):
                # blind: every target's box looks the same (a disabled one would tell an Anthropic target apart)
                temperature = widgets.temperature(key=f"cmp_temperature_{i}", adjustable=hide_targets or
                                                  widgets.takes_temperature(cfg, parse_model_id(model)))
                max_tokens = widgets.max_tokens(key=f"cmp_max_tokens_{i}")
                system = widgets.system_prompt(key=f"cmp_system_{i}", placeholder="empty: the shared system prompt")
            targets.append(TurnSettings.parse(model, system=system or shared_system, temperature=temperature,
                                              max_tokens=max_tokens))
    try:
        recent = db.recent_compare_runs(user, limit=8, mode="single")
    except StoreError:
        recent = []  # the page says so where it reads the run or saves a new one
    if recent:
        st.subheader("Recent comparisons", divider=False)
        for run in recent:
            st.button(escape_markdown(title_from(run["prompt"], 40)), key=f"cmp_open_{run['id']}", type="tertiary",
                      on_click=open_run, args=(run["id"],))


# ---------------------------------------------------------------- drawing a run
@st.fragment(parallel=True)
def live_column(reply: live.LiveReply, prompt_tokens: int, blind: bool = False) -> None:
    """Follow one column's live reply on a worker thread: its text and figures as they grow (in a blind run
    before the vote, none of the figures that would tell the model)."""
    prices = pricer()

    def figures() -> str:
        row = live_row(reply.turn, input_tokens=prompt_tokens, pricer=prices)
        return "  \n".join(blind_figures(row) if blind else column_figures(row))

    stream.follow_column(reply, figures)


def stop_replies(conversation_ids: list[str]) -> None:
    """A Stop button: the replies are stopped at once; the click's run then draws them settled."""
    running = [r for r in map(live.replies.running, conversation_ids) if r is not None]
    for reply in running:
        reply.stop()
    for reply in running:
        reply.wait(1.0)


def provider_names(name: str) -> list[str]:
    """What an error hint may call a provider: its label and its name (hidden in blind mode)."""
    endpoint = cfg.endpoint(name)  # the configuration says it: no provider (nor its SDK) built to draw a page
    return [name, endpoint.label if endpoint is not None else ""]


def column_header(title: str, settings: dict, show_settings: bool) -> None:
    st.markdown(f"**{title}**")  # label and model id, both from the configuration
    if show_settings:
        endpoint = cfg.endpoint(settings.get("provider") or "")
        st.caption(target_settings_text(settings, temperature_supported=takes_temperature(endpoint)))


def saved_column(view: RunView, column: RunColumn) -> None:
    reply = column.reply
    column_header(column_title(view, column), column.settings, view.revealed)
    running = live.replies.running(column.conversation_id)
    if running is not None:
        st.button("Stop", key=f"cmp_stop_{column.label}", icon=":material/stop_circle:", type="tertiary",
                  on_click=stop_replies, args=([column.conversation_id],))
        live_column(running, input_estimate(view.run["prompt"], TurnSettings.parse(
            f"{column.settings.get('provider')}:{column.settings.get('model')}")), not view.revealed)
        return
    render.thinking(reply)
    if reply.get("content"):
        render.message_body(reply["content"])
    names = provider_names(column.settings.get("provider") or "")
    render.ending_notice(reply, anonymise=None if view.revealed else functools.partial(anonymise, names=names))
    st.caption("  \n".join(column_figures(reply) if view.revealed else blind_figures(reply)))
    if view.revealed and st.button("Continue as chat", key=f"cmp_continue_{column.conversation_id}",
                                   icon=":material/chat:", type="tertiary"):
        st.switch_page("app_pages/chat.py", query_params={"c": column.conversation_id})


def saved_run(view: RunView) -> None:
    st.caption(f"Prompt: {escape_markdown(title_from(view.run['prompt'], 120))}")
    if not view.columns:
        st.info("The replies of this comparison were deleted.")
        return
    first = next(iter(db.messages(view.columns[0].conversation_id)[:1]), None)
    if first is not None and first.get("attachments"):  # the same files went to every target
        render.attached(first["attachments"], db.blob)
    for slot, column in zip(st.columns(len(view.columns), border=True), view.columns, strict=True):
        with slot:
            saved_column(view, column)
    if view.streaming:
        if not any(live.replies.running(c.conversation_id) for c in view.columns):
            st.info(SOME_WRITTEN_ELSEWHERE)
        return
    if view.revealed:  # a blind run's ranking would tell the models apart: shown once voted
        line = summary_line({c.label: c.reply for c in view.columns})
        if line:
            st.markdown(line)
        st.dataframe(summary_rows(view), hide_index=True, width="stretch",
                     column_config={"Model": st.column_config.TextColumn(width="medium")})
    choices = vote_choices(view.labels)
    st.caption("Your vote" + ("" if view.revealed else " (the models are revealed once you vote)"))
    for slot, (value, text) in zip(st.columns(len(choices)), choices, strict=True):
        slot.button(text, key=f"cmp_vote_{value}", width="stretch",
                    type="primary" if view.vote == value else "secondary",
                    on_click=cast_vote, args=(db, view.id, value))
    if view.vote:
        st.caption(f"You voted: {vote_text(view.vote, view.labels)}.")


# ---------------------------------------------------------------- the Compare tab
def compare_tab(work: Work) -> None:
    prompt = st.text_area("Prompt", key="cmp_prompt", placeholder="Ask every target the same thing", height=100)
    uploads = st.file_uploader("Attach files (sent to every target)", accept_multiple_files=True,
                               type=attachments.FILE_TYPES, key="cmp_files")
    run_col, stop_col, blind_col = st.columns([1, 1, 4], vertical_alignment="center")
    run_clicked = run_col.button("Run", type="primary", icon=":material/play_arrow:", key="cmp_run",
                                 width="stretch")
    blind = blind_col.checkbox("Blind", key="cmp_blind",
                               help="Hide which model wrote which column (labels A, B, …) until you vote.")
    if run_clicked:
        try:
            files, problems = widgets.read_uploads(uploads)
            if problems:  # a file that cannot go stops the run here
                raise CompareError(problems[0])
            started = start_run(turn_contexts(), prompt, targets, blind=blind, options={"synced": synced},
                                files=files)
            for column in started.columns:  # each column's reply belongs to its conversation from here on
                live.replies.start(column.turn, grace=live.START_GRACE)
            open_run(started.run_id)
        except CompareError as exc:
            st.warning(str(exc))
        except StoreError as exc:  # the prompt stays in its box, ready to run again
            st.error(str(exc), icon=":material/error:")
    run_id = st.query_params.get("run")
    try:
        view = load_run(db, run_id, user=user) if run_id else None
    except StoreError as exc:
        st.error(str(exc), icon=":material/error:")
        return
    streaming = {c.label: c.conversation_id for c in view.columns
                 if live.replies.running(c.conversation_id)} if view is not None else {}
    stop_col.button("Stop", icon=":material/stop:", key="cmp_stop", disabled=not streaming, width="stretch",
                    on_click=stop_replies, args=(list(streaming.values()),))
    work.clock = st.empty()
    if run_id and view is None:
        st.warning("That comparison was not found. It may have been deleted, or the link is wrong.")
        open_run(None)
    elif view is not None:
        saved_run(view)
        if streaming:
            work.streaming = streaming
    else:
        st.caption("Choose the targets in the sidebar, write a prompt and press Run: every target answers at the "
                   "same time, each in its own column.")


# ---------------------------------------------------------------- the Batch tab
def batch_prompts() -> list[str]:
    source = st.radio("Prompts", ["Paste, one per line", "CSV file"], horizontal=True, key="batch_source")
    if source != "CSV file":
        return prompts_from_text(st.text_area("Prompts, one per line", key="batch_text", height=150))
    upload = st.file_uploader("CSV file with a header row", type=["csv"], key="batch_file")
    if upload is None:
        return []
    data = upload.getvalue()
    try:
        names = csv_columns(data)
        if not names:
            return []
        return prompts_from_csv(data, st.selectbox("Column holding the prompts", names, key="batch_column"))
    except CompareError as exc:
        st.warning(str(exc))
        return []


def batch_results(batch_id: str) -> None:
    if st.session_state.pop(BATCH_STREAMED, None) == batch_id:
        # just interrupted (as for a comparison): the old run is still stopping its calls
        with st.spinner("Stopping…"):
            rows = batch_rows_settled(db, batch_id, user=user, timeout=3.0)
    else:
        rows = batch_rows(db, batch_id, user=user)
    if not rows:
        return
    expected = batch_expected_calls(db, batch_id)
    st.caption(f"{len(rows):,} of {expected:,} calls ran." if expected > len(rows) else f"All {len(rows):,} calls ran.")
    st.markdown("**Totals per target**")
    st.dataframe(batch_totals(rows), hide_index=True, width="stretch")
    st.markdown("**Results**")
    st.dataframe(batch_table(rows), hide_index=True, width="stretch",
                 column_config={"Reply": st.column_config.TextColumn(width="large")})
    st.download_button("Download CSV", batch_csv(rows), file_name=f"compare-batch-{batch_id[:8]}.csv",
                       mime="text/csv", icon=":material/download:", key="batch_download")


def batch_tab(work: Work) -> None:
    prompts = batch_prompts()
    in_flight = st.number_input("Calls in flight at most", min_value=1, max_value=MAX_IN_FLIGHT, value=4,
                                key="batch_in_flight")
    st.caption(f"{len(prompts):,} prompt{'s' if len(prompts) != 1 else ''} × {len(targets)} targets = "
               f"{len(prompts) * len(targets):,} calls, each saved as a conversation.")
    go_col, halt_col, _ = st.columns([1, 1, 4])
    batch = None
    if go_col.button("Run batch", type="primary", icon=":material/play_arrow:", key="batch_run", width="stretch"):
        try:
            batch = work.batch = BatchRun(turn_contexts(), prompts, targets, max_in_flight=int(in_flight))
        except CompareError as exc:
            st.warning(str(exc))
    halt_col.button("Stop", icon=":material/stop:", key="batch_stop", disabled=batch is None, width="stretch")
    work.progress = st.empty()
    work.table = st.empty()
    if batch is not None:
        st.query_params["batch"] = batch.batch_id
        st.session_state[BATCH_STREAMED] = batch.batch_id
    elif batch_id := st.query_params.get("batch"):
        batch_results(batch_id)


# ---------------------------------------------------------------- the work of this run, after drawing it all
def wait_for_columns(columns: dict[str, str], clock) -> None:
    """Wait for the columns (label -> conversation id) to finish, then draw the saved run. A Stop click
    interrupting the wait acts at once (see ``stream.clicked``); its callback then draws the settled run."""
    started = time.monotonic()
    try:
        while any(live.replies.running(cid) for cid in columns.values()):
            clock.caption(f"Streaming… {time.monotonic() - started:.1f} s")  # also where a rerun interrupts
            time.sleep(0.1)
    except BaseException as interruption:
        if stream.clicked(interruption, "cmp_stop"):
            stopping = list(columns.values())
        else:
            stopping = [cid for label, cid in columns.items() if stream.clicked(interruption, f"cmp_stop_{label}")]
        for reply in filter(None, map(live.replies.running, stopping)):
            reply.stop()
        raise
    st.rerun()  # every column has finished: the saved run, with its summary and votes


def run_batch(batch: BatchRun, progress_slot, table_slot) -> None:
    started = time.monotonic()
    progress = progress_slot.progress(0.0, text=f"0 of {batch.total:,} calls")
    shown = 0.0
    results = batch.run()
    try:
        for row in results:
            done = len(batch.rows)
            progress.progress(done / batch.total,
                              text=f"{done:,} of {batch.total:,} calls · {time.monotonic() - started:.1f} s")
            if row is not None and time.monotonic() - shown > 0.5:
                table_slot.dataframe(batch_table(batch.rows), hide_index=True, width="stretch")
                shown = time.monotonic()
    finally:
        results.close()  # a Stop lands here: stops the calls in flight (saved as stopped), skips the rest
    st.rerun()


tab_one, tab_batch = st.tabs(["Compare", "Batch"])
work = Work()
with tab_one:
    compare_tab(work)
with tab_batch:
    batch_tab(work)
if work.streaming:
    wait_for_columns(work.streaming, work.clock)
if work.batch is not None:
    run_batch(work.batch, work.progress, work.table)
