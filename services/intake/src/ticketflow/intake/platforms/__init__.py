"""Inbound: each chat platform's request format, translated to a normalised `ChatMessage`.

`botx` (eXpress: JWT verification and parsing with pybotx), `bitrix24` (imbot events: form parsing with
b24pysdk, the application token), `generic` (`POST /v1/messages` and its OpenAPI document), and `web`
(what every route shares: bounded bodies, JSON problem answers). No I/O of their own: `http.py` calls
them, then the application service (`app.py`)."""
