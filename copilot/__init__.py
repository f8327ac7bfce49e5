"""Agent Co-pilot: a local, private assistant beside a customer-service agent's main tool."""

__version__ = "0.1.0"
