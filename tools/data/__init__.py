"""`vertebra data`: reading, listing, plotting and exporting recordings."""
