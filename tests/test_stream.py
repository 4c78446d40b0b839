"""The page's streaming consumer: a Stop click read off the rerun that interrupts a run."""

from __future__ import annotations

from streamlit.proto.WidgetStates_pb2 import WidgetStates
from streamlit.runtime.scriptrunner_utils.exceptions import RerunException, StopException
from streamlit.runtime.scriptrunner_utils.script_requests import RerunData

from ui.stream import clicked


def rerun_with(widget_id: str, trigger: bool) -> RerunException:
    states = WidgetStates()
    widget = states.widgets.add()
    widget.id = widget_id
    widget.trigger_value = trigger
    return RerunException(RerunData(widget_states=states))


def test_a_rerun_from_the_stop_buttons_click_is_recognised():
    assert clicked(rerun_with("$$ID-0123abcd-stop-42", True), "stop-42")


def test_other_reruns_are_not_taken_for_a_stop():
    assert not clicked(rerun_with("$$ID-0123abcd-stop-42", False), "stop-42")  # not clicked
    assert not clicked(rerun_with("$$ID-0123abcd-stop-421", True), "stop-42")  # another reply's button
    assert not clicked(rerun_with("$$ID-0123abcd-open-7", True), "stop-42")  # New chat, Recent…
    assert not clicked(StopException(), "stop-42")  # the session closing: the reply goes on
