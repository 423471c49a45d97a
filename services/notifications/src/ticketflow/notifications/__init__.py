"""ticketflow notifications service."""
