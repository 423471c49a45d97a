"""Pure: the ticket's context, which events need a message to whom, policy, formatting, outcomes."""
