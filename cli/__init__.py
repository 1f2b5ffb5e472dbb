"""``run_line.py``'s subcommands, one module per part of the product (line, model, engines)."""
