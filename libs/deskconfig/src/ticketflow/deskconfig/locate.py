"""Map a field path ('tracks[1].calendar') back to its line in the TOML source.

tomllib keeps no positions, so the source is scanned once: table headers (`[a.b]`, `[[a]]`, counting
array-of-tables entries) and `key =` lines are recorded under their full path. A path that cannot be
found (an element inside an inline array, a missing key) falls back to its nearest recorded parent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PathPart = str | int
Path = tuple[PathPart, ...]

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\[\]]+?)\s*\]\]?\s*(?:#.*)?$")
_BARE_OR_QUOTED = r"""(?:[A-Za-z0-9_\-]+|"[^"]*"|'[^']*')"""
_KEY = re.compile(rf"^\s*({_BARE_OR_QUOTED}(?:\s*\.\s*{_BARE_OR_QUOTED})*)\s*=")
_DOTTED_PART = re.compile(_BARE_OR_QUOTED)
_STRINGS = re.compile(r""""(?:[^"\\]|\\.)*"|'[^']*'""")
_PATH_TOKEN = re.compile(r"\.([^.\[]+)|\[(\d+)\]|\[\.\.\.\]")


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field or '(file)'}: {self.message}"


def _dotted(text: str) -> tuple[str, ...]:
    return tuple(part.strip("\"'") for part in _DOTTED_PART.findall(text))


class LineIndex:
    def __init__(self, source: str) -> None:
        self.lines: dict[Path, int] = {}
        self._array_counts: dict[Path, int] = {}
        table: Path = ()
        in_multiline = False
        bracket_depth = 0  # inside a value's array spanning several lines
        for number, text in enumerate(source.splitlines(), start=1):
            if in_multiline:
                in_multiline = not _toggles_multiline(text)
                continue
            if bracket_depth > 0:
                bracket_depth += _bracket_balance(text)
                continue
            stripped = text.strip()
            if not stripped or stripped.startswith("#"):
                continue
            header = _HEADER.match(text)
            if header and not _KEY.match(text):
                table = self._enter_table(_dotted(header[2]), is_array=header[1] == "[[")
                self.lines.setdefault(table, number)
                continue
            key = _KEY.match(text)
            if key:
                self.lines.setdefault(table + _dotted(key[1]), number)
                value = text[key.end() :]
                in_multiline = _toggles_multiline(value)
                if not in_multiline:
                    bracket_depth = _bracket_balance(value)

    def _enter_table(self, keys: tuple[str, ...], *, is_array: bool) -> Path:
        path: Path = ()
        for position, key in enumerate(keys):
            path = (*path, key)
            last = position == len(keys) - 1
            if last and is_array:
                self._array_counts[path] = self._array_counts.get(path, 0) + 1
            if path in self._array_counts:
                path = (*path, self._array_counts[path] - 1)
        return path

    def line_of(self, path: Path) -> int:
        for length in range(len(path), 0, -1):
            line = self.lines.get(path[:length])
            if line is not None:
                return line
        return 1


def _bracket_balance(text: str) -> int:
    """Opened minus closed brackets/braces outside strings and comments."""
    code = _STRINGS.sub("", text).split("#", 1)[0]
    return code.count("[") + code.count("{") - code.count("]") - code.count("}")


def _toggles_multiline(text: str) -> bool:
    return (text.count('"""') + text.count("'''")) % 2 == 1


def parse_path(text: str) -> Path:
    """'$.tracks[0].eligibility[2]' (msgspec's notation) -> ('tracks', 0, 'eligibility', 2)."""
    parts: list[PathPart] = []
    for name, index in _PATH_TOKEN.findall(text.removeprefix("$")):
        if name:
            parts.append(name)
        elif index:
            parts.append(int(index))
    return tuple(parts)


def format_path(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out
