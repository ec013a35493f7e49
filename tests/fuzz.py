"""`make fuzz`: the property tests with random seeds, round after round, for FUZZ_SECONDS.

`make test` runs the same properties derandomized in CI (the `ci` profile in conftest.py), so a
landing never depends on luck; this is where new examples are looked for. Each round is one
pytest run of the tests marked `property` with a fresh seed. A failure prints the falsifying
example and the seed that found it (`--hypothesis-seed=N` replays it); turn it into an
`@example` or a unit test before fixing it.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time


def main() -> int:
    """Run rounds until the time is spent; exit 1 if any round failed."""
    budget = float(os.environ.get("FUZZ_SECONDS", "600"))
    deadline = time.monotonic() + budget
    env = {**os.environ, "HYPOTHESIS_PROFILE": "fuzz"}
    env.pop("CI", None)
    failed: list[int] = []
    rounds = 0
    while time.monotonic() < deadline:
        seed = random.SystemRandom().randrange(2**32)
        rounds += 1
        print(f"fuzz round {rounds}, seed {seed} ({deadline - time.monotonic():.0f} s left)",
              flush=True)
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-m", "property", "-p", "no:cacheprovider",
             f"--hypothesis-seed={seed}", *sys.argv[1:]],
            env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            failed.append(seed)
            print(result.stdout[-20000:], result.stderr[-5000:], sep="\n", flush=True)
            print(f"FAILED with --hypothesis-seed={seed}", flush=True)
    print(f"{rounds} rounds in {budget:.0f} s; "
          + (f"failing seeds: {failed}" if failed else "nothing found"), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
