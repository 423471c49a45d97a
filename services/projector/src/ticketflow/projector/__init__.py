"""ticketflow projector service."""
