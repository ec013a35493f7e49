"""The ImageKit-compatible management API (authenticated by security.api_auth)."""
