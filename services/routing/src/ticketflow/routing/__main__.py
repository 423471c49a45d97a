"""`python -m ticketflow.routing` runs the service."""

from ticketflow.routing.main import main

main()
