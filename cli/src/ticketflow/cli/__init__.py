"""`ticketflow`: the operators' command line (typer and rich). See `app.py` for the commands and
docs/operations.md for what each is for."""
