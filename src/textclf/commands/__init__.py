"""CLI sub-commands, discovered automatically by ``textclf.cli``: one module per command."""
