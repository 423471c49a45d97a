"""Intake's pure part: no I/O, no clock, no randomness.

- `messages`: what one normalised chat message does (open a ticket, add to it, answer a slash command);
- `slash`: the requester's slash commands; `texts`: what the bot says (self-help steps, status words);
- `agent_commands`: which `ticket.commands` intake applies, and the command to decide for each.
The ticket rules themselves are the lifecycle decider's (`ticketflow.lifecycle.decide` / `evolve`)."""
