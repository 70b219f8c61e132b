"""A registry the commands cannot use is refused in French, never with a traceback."""

from __future__ import annotations

from typer.testing import CliRunner

from tissu.cli import app


def test_a_binary_registry_is_refused_in_french_by_harvest(tmp_path):
    # the trial: a Rich traceback ending in « UnicodeDecodeError: 'utf-8' codec can't decode
    # byte 0xff »
    folder = tmp_path / "[red]registre"  # a path that looks like rich markup is shown as is
    folder.mkdir()
    registry = folder / "sources.yaml"
    registry.write_bytes(b"\x00\xff\xfe\x01\x02binaire")
    for args in (["harvest"], ["schedule", "--list"]):
        result = CliRunner().invoke(app, [*args, "--registry", str(registry), "--db",
                                          f"sqlite:///{tmp_path / 'tissu.db'}"],
                                    env={"COLUMNS": "400"})
        assert result.exit_code == 2, result.output
        assert isinstance(result.exception, SystemExit)
        assert (f"Registre refusé : {registry} : ce n'est pas du texte UTF-8 (octet 0xff "
                "illisible, octet n°2 du fichier, ligne 1)") in result.output
        assert "UnicodeDecodeError" not in result.output and "Traceback" not in result.output
