"""The one thread renders run on: a GPU is a serial resource, and the model is loaded and used there.

A daemon thread rather than a ThreadPoolExecutor, whose threads the interpreter joins at exit: a render that
does not stop when asked (a third-party operation that never checks its cancellation) must not keep the
process alive past its shutdown deadline. Its layer is simply left pending, and rendered after the restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class RenderThread:
    def __init__(self, name: str = "opendream-render") -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...], Any, Any] | None] = queue.SimpleQueue()
        self._busy = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    @property
    def busy(self) -> bool:
        return self._busy.is_set()

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """`function(*args)` on the render thread; cancelling the await leaves the job running to its end."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((function, args, loop, future))
        return await future

    def _loop(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            function, args, loop, future = job
            self._busy.set()
            result: Any = None
            error: BaseException | None = None
            try:
                result = function(*args)
            except BaseException as exc:  # handed to the awaiting coroutine; the thread goes on
                error = exc
            finally:
                self._busy.clear()
            with contextlib.suppress(RuntimeError):  # the event loop is gone: nobody waits any more
                loop.call_soon_threadsafe(_settle, future, result, error)

    def stop(self, timeout: float) -> bool:
        """Let the current job end within `timeout` seconds; True if the thread ended."""
        self._jobs.put(None)
        self._thread.join(timeout)
        return not self._thread.is_alive()
