"""Embed the runtime in a Trio program and spawn one actor per node."""

import attrs
import trio

from runtime import Actor, Address, Runtime, handler, message


@message("Discovered")
@attrs.frozen
class Discovered:
    mac: str


class Node(Actor):
    """One actor per machine, bound to its own routing keys on the task exchange."""

    def __init__(self) -> None:
        self.macs: list[str] = []

    @handler("on.task", "methods.requestProperties.{key}")
    async def properties(self, request: dict) -> dict:
        return {"node": self.ctx.key, "macs": self.macs}

    @handler("on.events", "node.discovered.{key}")
    async def discovered(self, event: Discovered) -> None:
        self.macs.append(event.mac)


async def main() -> None:
    async with Runtime() as rt:  # the embedded in-memory bus; no broker
        for n in range(1000):
            await rt.spawn(Node, key=f"node{n}")
        await rt.publish("on.events", "node.discovered.node7", Discovered("52:54:00:00:00:07"))
        reply = await rt.call(Address("on.task", "methods.requestProperties.node7"), {})
        print(reply, rt.statistics().actors)


if __name__ == "__main__":
    trio.run(main)
