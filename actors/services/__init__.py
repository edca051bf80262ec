"""The services that host the exchanges."""
