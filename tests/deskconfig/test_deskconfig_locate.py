"""The source scanner finds the line of a field path in the TOML shapes desk files use."""

from __future__ import annotations

from ticketflow.deskconfig.locate import LineIndex, format_path, parse_path

SOURCE = '''\
# comment [[not a header]]
id = "x"
multi = [
  "a = b",
  [1, 2]
]
text = """
[[fake]]
key = 1
"""
[[tracks]]
id = "one"
[[tracks]]
id = "two"
a.b = 1
[tracks.nested]
deep = true
[[tracks]]
"quoted key" = 3
[[tracks.items]]
name = "first"
[[tracks.items]]
name = "second"
[routing]
rules = [{ id = "r" }]
'''


def test_lines_of_headers_keys_and_nested_array_tables() -> None:
    index = LineIndex(SOURCE)
    assert index.line_of(("id",)) == 2
    assert index.line_of(("multi", 1)) == 3  # an element inside an inline array -> the key's line
    assert index.line_of(("tracks", 0, "id")) == 12
    assert index.line_of(("tracks", 1)) == 13
    assert index.line_of(("tracks", 1, "a", "b")) == 15
    assert index.line_of(("tracks", 1, "nested", "deep")) == 17
    assert index.line_of(("tracks", 2, "quoted key")) == 19
    assert index.line_of(("tracks", 2, "items", 1, "name")) == 23
    assert index.line_of(("routing", "rules", 0, "id")) == 25
    assert index.line_of(("fake",)) == 1  # inside a multi-line string: not a header; unknown -> line 1
    assert index.line_of(("key",)) == 1


def test_paths_round_trip_between_msgspec_and_display_notation() -> None:
    path = parse_path("$.tracks[0].eligibility[2]")
    assert path == ("tracks", 0, "eligibility", 2)
    assert format_path(path) == "tracks[0].eligibility[2]"
    assert parse_path("$") == ()
