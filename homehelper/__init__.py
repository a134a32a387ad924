"""HomeHelper: a supervised home-automation runtime for a folder of small Python apps."""

__version__ = "0.1.0"
