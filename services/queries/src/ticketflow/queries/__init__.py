"""ticketflow queries service: the read models as a JSON API for dashboards."""
