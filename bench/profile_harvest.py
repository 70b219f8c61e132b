"""Profile one ``tissu harvest`` of a generated corpus (W1's mix) with cProfile.

Run: ``.venv/bin/python bench/profile_harvest.py [--sources 30] [--events 100] [--out FILE]``,
then read ``FILE`` with ``pstats`` (cumulative or internal time). The harvest runs in a child
process against a local HTTP server on 127.0.0.1 (``bench/server.py``), as in W1; parsing done
in worker threads appears only as the main thread's wait in ``parse_with_time_limit``.
"""

from __future__ import annotations

import argparse
import pstats
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    """Generate, serve and harvest a corpus under cProfile; print the top 30 by cumulative time."""
    import yaml

    from bench.generator import generate
    from bench.run import TISSU, W1_FORMATS, bench_env
    from bench.server import CorpusServer

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sources", type=int, default=30)
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "harvest.prof")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="tissu-profile-"))
    try:
        corpus = generate(args.sources, args.events, seed=42, formats=W1_FORMATS)
        corpus.write(work / "corpus")
        with CorpusServer(corpus.served()) as server:
            (work / "sources.yaml").write_text(
                yaml.safe_dump(corpus.registry(server.base_url)), encoding="utf-8")
            env = bench_env(work, f"sqlite:///{work / 'tissu.db'}", work / "publish")
            command = [TISSU[0], "-m", "cProfile", "-o", str(args.out), *TISSU[1:], "harvest"]
            subprocess.run(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, check=False)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    pstats.Stats(str(args.out)).sort_stats("cumulative").print_stats(30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
