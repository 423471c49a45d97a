"""ticketflow sla service."""
