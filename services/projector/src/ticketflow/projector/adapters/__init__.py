"""The projector's tables: read-model rows loaded and written in the projection runner's transaction.

- `rows`: a table of msgspec Struct rows; `keyed`: a read model of one row per key
- `tickets`, `sla_board`: the two read models with tables of their own shape
- `read_models`: every read model the projector keeps
"""
