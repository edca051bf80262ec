"""rackbus actors: the RackHD domain on top of the runtime (exchanges, services, node actors, CLI)."""
