"""CLI subcommands (wiring layer): each module registers its parser with ``register``."""
