"""`python -m ticketflow.intake` runs the service."""

from ticketflow.intake.main import main

main()
