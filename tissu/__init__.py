"""Tissu: federated open-data aggregator and solidarity agenda (command line, settings, scheduler)."""

__version__ = "0.1.0"
USER_AGENT = f"Tissu/{__version__} (+https://github.com/tissu-pantin/tissu; agenda solidaire ouvert)"
