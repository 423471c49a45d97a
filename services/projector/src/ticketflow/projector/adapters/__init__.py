"""The projector's tables: read-model rows loaded and written in the projection runner's transaction."""
