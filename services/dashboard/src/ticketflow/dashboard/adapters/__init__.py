"""Outbound I/O: the query API (with the visitor's token), ticket.commands, the ticket streams."""
