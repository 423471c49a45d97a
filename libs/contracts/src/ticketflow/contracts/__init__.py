"""Event and command contracts shared by every ticketflow service.

Everything that crosses a process boundary (Kafka records, event-store rows, HTTP bodies between services)
is one of the frozen msgspec Structs defined here, so a reader of one service knows the wire format of all.
"""
