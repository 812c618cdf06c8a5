"""opsmith: build DevOps/SRE LLM assistants with prompts, RAG or fine-tuning, and measure which is right."""

__version__ = "0.1.0"
