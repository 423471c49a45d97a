"""`python -m ticketflow.notifications` runs the service."""

from ticketflow.notifications.main import main

main()
