"""Outbound I/O: the delivery ledger, the chat channels and the engine that drives them, the outcome events' writes."""
