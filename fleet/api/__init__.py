"""The REST API of the fleet service."""
from fleet.api.app import create_app

__all__ = ["create_app"]
