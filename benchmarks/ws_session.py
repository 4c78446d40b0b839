"""A Streamlit session without a browser: speaks the app's websocket protocol (the protobuf BackMsg and
ForwardMsg that ship with streamlit) to send a chat message and time the streamed reply as the server
sends it. Used by the load benchmark to measure the server alone, with no renderer sharing its CPU."""

from __future__ import annotations

import asyncio
import time

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg


class WsSession:
    """One browser-less session of the app at `url` (http://host:port)."""

    def __init__(self, url: str):
        self.ws_url = url.replace("http://", "ws://").rstrip("/") + "/_stcore/stream"
        self.origin = url.rstrip("/")
        self.ws = None
        self.chat_input_id: str | None = None
        self.fragment_id: str | None = None
        self.page_script_hash = ""
        self.query_string = ""

    async def connect(self) -> None:
        self.ws = await websockets.connect(self.ws_url, subprotocols=["streamlit"], origin=self.origin,
                                           max_size=None, ping_interval=None)
        await self._rerun()
        await self._until_finished()

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()

    async def _rerun(self, chat_input: str | None = None) -> None:
        msg = BackMsg()
        state = msg.rerun_script
        state.query_string = self.query_string
        state.page_script_hash = self.page_script_hash
        if chat_input is not None:
            widget = state.widget_states.widgets.add()
            widget.id = self.chat_input_id
            widget.chat_input_value.data = chat_input
            if self.fragment_id:
                state.fragment_id = self.fragment_id
        await self.ws.send(msg.SerializeToString())

    def _note(self, fwd: ForwardMsg) -> None:
        kind = fwd.WhichOneof("type")
        if kind == "new_session":
            self.page_script_hash = fwd.new_session.page_script_hash or self.page_script_hash
        elif kind == "page_info_changed":
            self.query_string = fwd.page_info_changed.query_string
        elif kind == "delta" and fwd.delta.WhichOneof("type") == "new_element":
            element = fwd.delta.new_element
            if element.WhichOneof("type") == "chat_input":
                self.chat_input_id = element.chat_input.id
                self.fragment_id = fwd.delta.fragment_id or None

    async def _messages(self):
        async for raw in self.ws:
            fwd = ForwardMsg()
            fwd.ParseFromString(raw)
            self._note(fwd)
            yield fwd

    async def _until_finished(self) -> None:
        """Until a run has finished, not counting one that ended early for a rerun (`st.rerun()`): the
        rerun's output follows."""
        async for fwd in self._messages():
            if (fwd.WhichOneof("type") == "script_finished"
                    and fwd.script_finished != ForwardMsg.ScriptFinishedStatus.FINISHED_EARLY_FOR_RERUN):
                return

    async def stream_reply(self, prompt: str, first: str, last: str, timeout: float = 180.0) -> tuple[float, float]:
        """Send `prompt` through the chat input; return the wall times at which the server first sent a
        markdown element containing `first`, and one containing both `first` and `last` (the prompt, drawn
        as the user's message, may hold `last` too)."""
        if self.chat_input_id is None:
            raise RuntimeError("the page drew no chat input")
        await self._rerun(prompt)
        marks: dict[str, float] = {}

        async def watch() -> None:
            async for fwd in self._messages():
                if fwd.WhichOneof("type") != "delta" or fwd.delta.WhichOneof("type") != "new_element":
                    continue
                element = fwd.delta.new_element
                if element.WhichOneof("type") != "markdown":
                    continue
                body = element.markdown.body
                now = time.time()
                if "first" not in marks and first in body:
                    marks["first"] = now
                if last in body and first in body:  # the reply, not a message that quotes its last word
                    marks["last"] = now
                    return

        await asyncio.wait_for(watch(), timeout)
        await self._until_finished()
        return marks["first"], marks["last"]
