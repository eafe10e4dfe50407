"""``python -m stockguard``: the same command line as the ``stockguard`` script."""

from stockguard.cli import app

app(prog_name="stockguard")
