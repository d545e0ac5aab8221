"""The recommendations of the catalogue and the cards they produce (pure: no Flask, no HTTP)."""
