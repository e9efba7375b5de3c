"""The ``pi-axera-sd`` command, one module per sub-command.

Map:
  main.py            the parser and ``main`` (exit codes: config faults are one line and exit 2)
  common.py          the one-line usage error, the shared engine flags, settings from flags
  settings_flags.py  a ``--flag`` for every :class:`~pi_axera_sd.config.Settings` field
  generate.py        ``generate``
  serve.py           ``serve`` and ``systemd``
  models.py          ``models export|random|quantize|pull|verify``
  interrogate.py     ``interrogate`` and ``models export-clip|random-clip``
  loadtest.py        ``loadtest``
  haproxy.py         ``haproxy``

Sub-command modules import ``common`` and never this package's ``main``, so there is no cycle.
"""

from pi_axera_sd.cli.common import settings_from_args
from pi_axera_sd.cli.main import build_parser, main

__all__ = ["build_parser", "main", "settings_from_args"]
