"""Event and command contracts, topic registry, normalised chat message."""
