"""The worker pool both renderers share: one function mapped over work items, in order, in several processes.

Each image depends only on its own spec or index, never on which process drew it, so the output is
byte-identical whatever the number of workers; the renderers cut their work into items (many small
ones, which balance slow items and let the processes finish together) and this module only shares them.

This process renders from the start: spawned workers first import trdg, OpenCV and Pillow afresh
(~0.5 s idle, ~1.5 s on a loaded machine), which cost 2 workers a tenth of their speed-up on a
2000-image run when this process only waited for them.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def map_in_order(func: Callable[[Item], Result], items: Sequence[Item], workers: int) -> Iterator[Result]:
    """`func(item)` for every item, in order, computed by this process and up to `workers - 1` spawned ones,
    each taking the next item as it finishes one. `func` must be picklable (a module-level function or a
    partial of one). The first error a worker raises is raised here."""
    if workers <= 1 or len(items) <= 1:
        yield from map(func, items)
        return
    helpers = min(workers, len(items)) - 1
    pending = deque(range(len(items)))
    done: dict[int, Result] = {}
    errors: list[BaseException] = []
    changed = threading.Condition()

    def take() -> int | None:
        with changed:
            return pending.popleft() if pending and not errors else None

    def finished(i: int, value: Result) -> None:
        with changed:
            done[i] = value
            changed.notify()
        submit()

    def arrived(i: int) -> bool:
        return i in done or bool(errors)

    def failed(exc: BaseException) -> None:
        with changed:
            errors.append(exc)
            changed.notify()

    # spawn: workers start clean (no inherited RNG, thread or torch state) on every OS.
    with multiprocessing.get_context("spawn").Pool(helpers) as pool:

        def submit() -> None:
            i = take()
            if i is not None:
                pool.apply_async(func, (items[i],), callback=partial(finished, i), error_callback=failed)

        for _ in range(2 * helpers):  # one item at work and one queued per helper
            submit()
        for i in range(len(items)):
            while i not in done:
                mine = take()
                if mine is not None:
                    value = func(items[mine])
                    with changed:
                        done[mine] = value
                    continue
                with changed:
                    changed.wait_for(partial(arrived, i))
                    if errors:
                        raise errors[0]
            yield done.pop(i)
