"""Use cases over Protocol ports. Imports the domain only."""
