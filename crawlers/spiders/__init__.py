"""Tissu's spiders: ``generic`` (schema.org / h-event on any site) and one spider per hand-made
site without markup (``reseau_alpha`` is the template to copy)."""
