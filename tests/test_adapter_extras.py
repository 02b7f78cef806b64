"""Without its framework, an adapter says in one line which kitaru extra to install.

Each test starts a real interpreter in which the framework cannot be imported (its
entry in ``sys.modules`` is ``None``, as Python does for a module known to be absent),
imports kitaru and its adapters package (which must not need any framework), then the
adapter, and prints what the import raised.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import REPO, TIMEOUT, child_env

PROGRAM = """
import json, sys
sys.modules[{framework!r}] = None
import kitaru, kitaru.adapters
try:
    import kitaru.adapters.{adapter}
except Exception as exc:
    print(json.dumps({{"type": type(exc).__name__, "message": str(exc)}}))
    sys.exit(0)
sys.exit("the adapter imported without its framework")
"""


class TestMissingFramework:
    @pytest.mark.parametrize(
        ("adapter", "framework", "extra", "names"),
        [
            ("pydantic_ai", "pydantic_ai", "kitaru[pydantic-ai]", "PydanticAI"),
            ("openai_agents", "agents", "kitaru[openai-agents]", "the OpenAI Agents SDK"),
        ],
    )
    def test_importing_the_adapter_names_the_extra_to_install(
        self, adapter: str, framework: str, extra: str, names: str
    ) -> None:
        """The import fails with KitaruFeatureNotAvailableError naming the framework and extra."""
        program = PROGRAM.format(framework=framework, adapter=adapter)
        done = subprocess.run(
            [sys.executable, "-c", program],
            cwd=REPO,
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        assert done.returncode == 0, (done.stdout, done.stderr)
        raised = json.loads(done.stdout)
        assert raised["type"] == "KitaruFeatureNotAvailableError"
        message: str = raised["message"]
        assert "\n" not in message
        assert message.startswith(f"kitaru.adapters.{adapter} needs {names} (")
        assert framework in message  # the import that failed, so the cause is visible
        assert message.endswith(f"Install it with `pip install '{extra}'`.")
