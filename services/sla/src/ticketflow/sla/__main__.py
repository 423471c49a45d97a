"""`python -m ticketflow.sla` runs the service."""

from ticketflow.sla.main import main

main()
