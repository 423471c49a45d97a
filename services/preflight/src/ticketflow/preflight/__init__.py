"""ticketflow preflight service."""
