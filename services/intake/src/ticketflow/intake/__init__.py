"""ticketflow intake service."""
