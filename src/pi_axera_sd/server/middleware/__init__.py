"""What every request passes through before a route: access log, auth, body size, JSON decoding."""
