from pathlib import Path

from tissu.cli import _settings


def test_raw_snapshots_follow_an_explicit_sqlite_store(tmp_path, monkeypatch):
    monkeypatch.delenv("TISSU_RAW_DIR", raising=False)
    settings = _settings(None, f"sqlite:///{tmp_path / 'x' / 'tissu.db'}", None)
    assert settings.raw_dir == tmp_path / "x" / "raw"
    monkeypatch.setenv("TISSU_RAW_DIR", str(tmp_path / "ailleurs"))
    assert _settings(None, f"sqlite:///{tmp_path / 'tissu.db'}", None).raw_dir == Path(
        tmp_path / "ailleurs")


def test_port_in_use_is_explained_in_french():
    import socket

    from tissu.cli import port_problem

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        message = port_problem("127.0.0.1", port)
        served = port_problem("127.0.0.1", port, "serve")
    assert message is not None and f"le port {port} est déjà utilisé" in message
    assert f"« tissu run --port {port + 1} » ou « make run PORT={port + 1} »" in message
    # the trial: « tissu serve » on a busy port was told to use « tissu run »
    assert served is not None and served.endswith(f"« tissu serve --port {port + 1} »")


def test_port_and_registration_number_are_checked_in_french():
    from typer.testing import CliRunner

    from tissu.cli import app

    runner = CliRunner()
    for args in (["serve", "--port", "99999"], ["run", "--port", "0"],
                 ["serve", "--port", "abc"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, args
        assert "port invalide" in result.output and "de 1 à 65535" in result.output
        assert "Traceback" not in result.output and "Invalid value" not in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
    for args in (["sources", "approve", "abc"], ["sources", "reject", "0", "--reason", "x"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, args
        assert "numéro d'inscription invalide" in result.output
        assert "Invalid value" not in result.output
    assert "8001" in runner.invoke(app, ["serve", "--help"]).output
