"""The built-in operations, one module each. Importing them is cheap: torch loads inside `run`."""
