"""Publishing: the open SQLite database, its Datasette metadata, and the exports."""
