"""monte_carlo."""
