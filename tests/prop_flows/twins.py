"""A second ``work`` checkpoint, in another module: the same short name as
``interpreter.work``, a different function (it mixes in one more)."""

from __future__ import annotations

from kitaru import checkpoint

from . import interpreter


@checkpoint(retries=interpreter.WORK_RETRIES)
def work(  # noqa: PLR0917  (the same arguments as interpreter.work)
    key: str, value: int, fails: int, pause: float, prev: int, log: str
) -> int:
    runs = interpreter.effect(log, key)
    if runs <= fails:
        raise ValueError(f"{key}: planned failure {runs} of {fails}")
    return (interpreter.mix(prev, key, value) + 1) % interpreter.MODULUS
