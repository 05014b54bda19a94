"""See DESIGN.md for what lives in this layer."""
