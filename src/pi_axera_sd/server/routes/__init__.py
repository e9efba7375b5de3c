"""The HTTP routes, one module per family of clients (see the map in :mod:`pi_axera_sd.server`)."""
