"""The application: the daemon's wiring and life-cycle, the commands, status views and the demo."""
