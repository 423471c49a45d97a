"""The read models as the query API reads them (SQL), and the checkpoints it reports and waits for."""
