"""Print docs/configuration.md, generated from the Settings class (every variable, flag, default,
allowed value and meaning).

    python scripts/configuration_doc.py > docs/configuration.md
"""

from pi_axera_sd.cli.settings_doc import render_configuration

if __name__ == "__main__":
    print(render_configuration(), end="")
