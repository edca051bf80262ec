"""rackbus actors: the RackHD domain on the runtime (exchanges, services, node actors, the CLI)."""
