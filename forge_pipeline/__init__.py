"""Forge: turn an Obsidian vault and chat interactions into a continuously fine-tuned local LLM."""

__version__ = "0.1.0"
