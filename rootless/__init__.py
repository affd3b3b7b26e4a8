"""rootless: Docker's verbs without a daemon and without root."""

__version__ = "0.1.0"
