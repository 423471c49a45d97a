"""Business calendars: working intervals, holidays, moved working days, business-time arithmetic."""
