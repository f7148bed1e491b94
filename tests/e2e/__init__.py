"""End-to-end tests: real `hass` processes, the simulator CLI, and a real browser."""
