"""harness.client.pump.Resumer: streams that end together do not hold the loop (issue #12).

A wave of users whose responses ended at once (all started together) each records, reports and
sends its next request. Run back to back in one loop iteration, that work kept other streams'
first tokens unread longer than the gap to their next token, and TCP then merged the two and
stamped the first with the second's arrival. The Resumer wakes them a slice at a time, with a
poll of the sockets between slices: a socket that became readable with the wave is read after a
slice, not after the whole wave. Ordering, not timing, is asserted: a slower machine only makes
the slices shorter in work done.
"""

from __future__ import annotations

import time

import gevent
import gevent.socket
from gevent.hub import Waiter, get_hub

from harness.client.pump import SLICE_S, Resumer

WAVE = 40
WORK_S = 0.0005  # CPU per woken user: together 20 ms, 20 slices of SLICE_S


def _busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def _wave(wake_all) -> list[str]:
    """WAVE users wait; a socket becomes readable and every user is woken by `wake_all`; returns
    the order in which the users ran and the socket was read."""
    hub = get_hub()
    order: list[str] = []
    waiters: list[Waiter] = []

    def user(i: int) -> None:
        w = Waiter(hub)
        waiters.append(w)
        w.get()
        _busy(WORK_S)
        order.append(f"user{i}")

    users = [gevent.spawn(user, i) for i in range(WAVE)]
    gevent.sleep(0)
    assert len(waiters) == WAVE
    a, b = gevent.socket.socketpair()
    watcher = hub.loop.io(a.fileno(), 1)

    def readable() -> None:
        watcher.stop()
        a.recv(16)
        order.append("read")

    watcher.start(readable)
    b.send(b"token")
    wake_all(waiters)
    gevent.joinall(users, timeout=10)
    watcher.stop()
    a.close()
    b.close()
    return order


def test_a_wave_of_woken_users_lets_a_readable_socket_in_after_a_slice() -> None:
    resumer = Resumer(get_hub())

    def wake(waiters: list[Waiter]) -> None:
        for w in waiters:
            resumer.wake(w)

    order = _wave(wake)
    assert sorted(order) == sorted(["read", *(f"user{i}" for i in range(WAVE))])
    slice_users = int(SLICE_S / WORK_S) + 1
    assert order.index("read") <= slice_users + 1, order  # one slice at most ran before the read


def test_without_it_the_whole_wave_runs_before_the_read() -> None:
    """The control: switching to each user from one loop callback (as the read callback did)
    runs the whole wave before the socket is looked at."""
    hub = get_hub()

    def wake(waiters: list[Waiter]) -> None:
        hub.loop.run_callback(lambda: [w.switch(None) for w in waiters])

    order = _wave(wake)
    assert order.index("read") == WAVE


def test_each_user_is_woken_once_and_the_queue_ends_empty() -> None:
    hub = get_hub()
    resumer = Resumer(hub)
    seen: list[int] = []

    def user(i: int) -> None:
        w = Waiter(hub)
        resumer_waiters[i] = w
        seen.append(w.get())

    resumer_waiters: dict[int, Waiter] = {}
    users = [gevent.spawn(user, i) for i in range(5)]
    gevent.sleep(0)
    for i in range(5):
        resumer.wake(resumer_waiters[i])
    gevent.joinall(users, timeout=5)
    assert seen == [None] * 5 and all(g.dead for g in users)
    assert not resumer.queue and not resumer.armed
