from ticketflow.routing.main import main

main()
