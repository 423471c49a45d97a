"""`python -m ticketflow.intake` (what `make run` starts)."""

from ticketflow.intake.main import main

main()
