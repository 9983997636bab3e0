"""devhost: a local stand-in for the Azure Functions host (tests and offline runs only)."""
