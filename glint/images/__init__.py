"""Images: the records tasks produce and consume."""
