"""`python -m ticketflow.preflight` runs the service."""

from ticketflow.preflight.main import main

main()
