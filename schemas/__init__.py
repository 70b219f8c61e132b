"""Tissu schemas: the source registry and the working-store tables (schema v1)."""
