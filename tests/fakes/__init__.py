"""In-process fakes of the platforms ticketflow talks to, as real servers on 127.0.0.1.

Start one with `async with FakeBotX(...).running() as fake:` (each has `base_url`, `received`
and fault injection: `fail_next(...)`). Nothing here contacts an address outside 127.0.0.0/8.
"""
