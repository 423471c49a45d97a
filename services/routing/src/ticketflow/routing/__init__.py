"""ticketflow routing service."""
