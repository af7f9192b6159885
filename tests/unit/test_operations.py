import asyncio

from corral.errors import BadRequest
from corral.events import EventHub
from corral.operations import TOKEN, OperationManager, Work


async def test_lifecycle_events_and_result():
    hub = EventHub()
    lst = hub.listen(["operation"])
    mgr = OperationManager(hub)

    async def work(op):
        op.update_metadata({"progress": "50%"})
        return {"done": True}

    op = mgr.create(description="Testing", run=work)
    assert await op.wait(5)
    assert op.status == "Success" and op.status_code == 200 and op.metadata == {"progress": "50%", "done": True}
    statuses = []
    while not lst.queue.empty():
        statuses.append(lst.queue.get_nowait()["metadata"]["status"])
    assert statuses[0] == "Pending" and statuses[-1] == "Success" and "Running" in statuses


async def test_failure_and_cancel():
    mgr = OperationManager(EventHub())

    async def boom(op):
        raise BadRequest("nope")

    op = mgr.create(description="Failing", run=boom)
    await op.wait(5)
    assert op.status == "Failure" and op.err == "nope" and op.status_code == 400

    async def slow(op):
        await asyncio.sleep(60)

    op = mgr.create(description="Slow", run=slow, cancellable=True)
    op.cancel()
    await op.wait(5)
    assert op.status == "Cancelled" and op.status_code == 401
    op2 = mgr.create(description="Slow", run=slow)
    try:
        op2.cancel()
        raise AssertionError("uncancellable operation was cancelled")
    except BadRequest:
        pass
    mgr.cancel_all()


async def test_drain_waits_then_gives_up():
    mgr = OperationManager(EventHub())

    async def short(op):
        await asyncio.sleep(0.2)

    mgr.create(description="Short", run=short)
    assert await mgr.drain(5)

    async def long(op):
        await asyncio.sleep(30)

    mgr.create(description="Long", run=long)
    assert not await mgr.drain(0.2)
    mgr.cancel_all()


async def test_wait_timeout_returns_false():
    mgr = OperationManager(EventHub())

    async def slow(op):
        await asyncio.sleep(10)

    op = mgr.create(description="Slow", run=slow)
    assert not await op.wait(0.05)
    mgr.cancel_all()


async def test_work_describes_and_start_makes_the_operation():
    hub = EventHub()
    lst = hub.listen(["operation"])
    mgr = OperationManager(hub)
    ran, started = [], []

    async def run(op):
        ran.append(op.id)
        return {"n": 1}

    work = Work(description="Doing", run=run, project="p1", resources={"images": ["/1.0/images/x"]},
                metadata={"m": 0}, on_start=started.append)
    await asyncio.sleep(0)
    assert mgr.all() == [] and lst.queue.empty()        # a Work alone starts nothing
    op = mgr.start(work)
    assert started == [op] and op.project == "p1" and op.description == "Doing"
    assert op.resources == {"images": ["/1.0/images/x"]}
    assert await op.wait(5) and ran == [op.id] and op.metadata == {"m": 0, "n": 1}
    token = mgr.start(Work(description="Grant", cls=TOKEN, metadata={"secret": "s"}))
    assert token.status == "Running" and token.may_cancel     # tokens wait, and can be cancelled
    token.cancel()
    assert token.status == "Cancelled"
