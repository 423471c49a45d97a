"""The projector's pure part: how each event changes a read model's row. No I/O."""
