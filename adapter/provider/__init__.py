"""Use cases, no HTTP: resolve objects -> build query -> run -> map values; background discovery."""
