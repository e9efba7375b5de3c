"""Helpers shared by the tests: servers in a subprocess, fake hubs, the pyaxengine stand-in, CLIP fixtures."""
