"""Models: naming them (spec), building the built-in one (tiny) and loading them once (loader)."""
