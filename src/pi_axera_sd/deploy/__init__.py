"""Deployment: the systemd unit for the service."""
