"""Settings read from the environment (tissu/settings.py): the parse processes of a harvest and
the feed doctor's limits, with their defaults and French errors naming the variable."""

from __future__ import annotations

import os

import pytest

from tissu.settings import Settings, get_settings

CHECKS = ("TISSU_CHECK_TIME_LIMIT", "TISSU_CHECK_MEMORY_MB", "TISSU_CHECK_MAX_RUNNING")


@pytest.fixture
def clean(monkeypatch):
    for name in (*CHECKS, "TISSU_PARSE_PROCESSES"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_the_doctors_limits_default_and_follow_the_environment(clean):
    settings = Settings()
    assert (settings.check_time_limit, settings.check_memory_mb,
            settings.check_max_running) == (20.0, 1024, 2)
    clean.setenv("TISSU_CHECK_TIME_LIMIT", " 2.5 ")
    clean.setenv("TISSU_CHECK_MEMORY_MB", "0")  # no memory limit
    clean.setenv("TISSU_CHECK_MAX_RUNNING", "5")
    clean.setenv("TISSU_PARSE_PROCESSES", "3")
    settings = get_settings()
    assert (settings.check_time_limit, settings.check_memory_mb,
            settings.check_max_running, settings.parse_processes) == (2.5, 0, 5, 3)
    clean.setenv("TISSU_CHECK_TIME_LIMIT", "")  # empty: the default
    assert Settings().check_time_limit == 20.0


@pytest.mark.parametrize(("name", "raw", "expected"), [
    ("TISSU_CHECK_TIME_LIMIT", "vingt", "un nombre"),
    ("TISSU_CHECK_TIME_LIMIT", "0", "un nombre positif"),
    ("TISSU_CHECK_TIME_LIMIT", "-3", "un nombre positif"),
    ("TISSU_CHECK_TIME_LIMIT", "nan", "un nombre positif"),
    ("TISSU_CHECK_MEMORY_MB", "1 Go", "un nombre entier"),
    ("TISSU_CHECK_MEMORY_MB", "-1", "un nombre positif"),
    ("TISSU_CHECK_MAX_RUNNING", "deux", "un nombre entier"),
    ("TISSU_CHECK_MAX_RUNNING", "-2", "un nombre positif"),
])
def test_a_bad_limit_is_refused_in_french_naming_the_variable(clean, name, raw, expected):
    clean.setenv(name, raw)
    with pytest.raises(ValueError) as caught:
        get_settings()
    assert str(caught.value) == f"{name} doit être {expected} (reçu {raw!r})"


def test_parse_processes_default_to_the_cpus_at_most_four(clean):
    cpus = len(os.sched_getaffinity(0))
    automatic = 0 if cpus < 2 else min(cpus, 4)
    assert Settings().parse_processes == automatic
    clean.setenv("TISSU_PARSE_PROCESSES", "0")  # everything in the main process
    assert Settings().parse_processes == 0
    clean.setenv("TISSU_PARSE_PROCESSES", "-1")
    assert Settings().parse_processes == 0
    # as when pipeline.parse_processes read it: not a whole number means automatic
    clean.setenv("TISSU_PARSE_PROCESSES", "auto")
    assert Settings().parse_processes == automatic
