"""LLM providers behind the :class:`ChatModel` seam."""

from opsmith.llm._base import ChatModel, ChatResponse, Message, StreamEvent, Usage
from opsmith.llm.registry import get_chat_model

__all__ = ["ChatModel", "ChatResponse", "Message", "StreamEvent", "Usage", "get_chat_model"]
