"""Group commit for the receiver: requests queue their inbox writes and share one transaction.

A request is acknowledged only after its receipt is committed. The first write queued schedules
a commit for the next turn of the event loop; every request read meanwhile joins it, so under
load one commit serves many requests, and under light load a request waits for its own only.

With `synchronous=NORMAL` a commit only hands pages to the OS (~50 µs), so it runs on the
event loop: measured, the hand-off to a thread and back cost the receiver more CPU than the
commit itself. With `FULL` every commit waits for an fsync, so commits run in a thread of
their own and the loop goes on reading requests meanwhile. Either way, WAL checkpoints (copying
the log into the database file, with an fsync) run in a background thread every
`checkpoint_seconds`, never inside a commit that requests are waiting on.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from integration_platform.webhooks.inbox import Inbox, InboxWrite, Outcome, Synchronous

_Pending = tuple[InboxWrite, "asyncio.Future[Outcome]"]


class InboxWriter:
    def __init__(
        self,
        path: Path,
        *,
        synchronous: Synchronous = "NORMAL",
        max_batch: int = 1000,
        checkpoint_seconds: float = 1.0,
    ) -> None:
        self.path = path
        self.max_batch = max_batch
        self._inbox = Inbox(path, synchronous=synchronous, autocheckpoint=False)
        self._executor = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="inbox-writer")
            if synchronous == "FULL"
            else None
        )
        self._queue: list[_Pending] = []
        self._committing = False
        self.commits = 0
        self._stop = threading.Event()
        self._checkpointer = threading.Thread(
            target=self._checkpoint_every,
            args=(checkpoint_seconds,),
            daemon=True,
            name="inbox-checkpoint",
        )
        self._checkpointer.start()

    async def write(self, item: InboxWrite) -> Outcome:
        """Queue one write; return once it is committed (raises if the commit failed)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()
        self._queue.append((item, future))
        if not self._committing:
            self._committing = True
            loop.call_soon(self._commit_next)
        return await future

    def _commit_next(self) -> None:
        batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
        if not batch:
            self._committing = False
            return
        writes = [item for item, _ in batch]
        if self._executor is None:
            try:
                outcomes = self._inbox.write(writes)
            except Exception as exc:  # handed to every waiting request, which answers 503
                self._settle(batch, [], exc)
            else:
                self._settle(batch, outcomes, None)
            return
        done = asyncio.get_running_loop().run_in_executor(self._executor, self._inbox.write, writes)
        done.add_done_callback(
            lambda finished: self._settle(
                batch, [] if finished.exception() else finished.result(), finished.exception()
            )
        )

    def _settle(
        self, batch: list[_Pending], outcomes: list[Outcome], error: BaseException | None
    ) -> None:
        self.commits += 1
        for position, (_, future) in enumerate(batch):
            if future.done():  # the request went away (client disconnect, cancellation)
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(outcomes[position])
        if self._queue:
            asyncio.get_running_loop().call_soon(self._commit_next)
        else:
            self._committing = False

    def _checkpoint_every(self, seconds: float) -> None:
        with Inbox(self.path) as inbox:
            while not self._stop.wait(seconds):
                inbox.checkpoint()

    async def close(self) -> None:
        """Wait for queued writes, then stop the checkpoints and release the file."""
        while self._queue or self._committing:
            await asyncio.sleep(0.005)
        self._stop.set()
        await asyncio.to_thread(self._checkpointer.join)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self._inbox.checkpoint("TRUNCATE")
        self._inbox.close()
