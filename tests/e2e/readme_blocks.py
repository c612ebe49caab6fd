"""The README's fenced code blocks, for tests that check its examples work as written."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from markdown_it import MarkdownIt

from integration_platform.environment import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"


@dataclass(frozen=True)
class FencedBlock:
    language: str  # the fence's info string's first word: "yaml", "sh", "" for none
    text: str  # the block's lines, without the fences and the indentation of a list item
    line: int  # the README line of its first line of text (1-based)

    @property
    def name(self) -> str:
        """An id for a test: `yaml-line-138`."""
        return f"{self.language or 'text'}-line-{self.line}"


def fenced_blocks(language: str | None = None, path: Path = README) -> list[FencedBlock]:
    """Every fenced block of `path` in order (only `language`'s when given), parsed as
    CommonMark does (markdown-it-py): fences inside list items included."""
    blocks = []
    for token in MarkdownIt("commonmark").parse(path.read_text()):
        if token.type != "fence" or token.map is None:
            continue
        info = token.info.split()
        block = FencedBlock(info[0] if info else "", token.content, token.map[0] + 2)
        if language is None or block.language == language:
            blocks.append(block)
    return blocks
