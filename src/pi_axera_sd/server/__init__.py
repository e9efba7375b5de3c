"""The HTTP service: the seed's ``/generate``, the A1111 API subset, interrogation, operations.

``pi_axera_sd.server.app.create_app`` builds the ASGI app; ``pi-axera-sd serve`` runs it.
(Nothing is imported here, so the CLI stays quick to start.)
"""
