"""pushbench: measure how a server pushes data to clients, honestly."""

__version__ = "0.1.0"
