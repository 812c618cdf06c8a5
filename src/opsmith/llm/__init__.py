"""LLM providers behind the :class:`ChatModel` seam."""

from opsmith.llm._base import ChatModel, ChatResponse, Message, StreamEvent, Usage

__all__ = ["ChatModel", "ChatResponse", "Message", "StreamEvent", "Usage"]
