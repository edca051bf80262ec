import attrs
import trio

from runtime import Actor, Address, Runtime, handler, message


@message("Discovered")
@attrs.frozen
class Discovered:
    mac: str


class Node(Actor):  # one actor per machine, bound to its own routing keys
    def __init__(self) -> None:
        self.macs: list[str] = []

    @handler("on.events", "node.discovered.{key}")
    async def discovered(self, event: Discovered) -> None:
        self.macs.append(event.mac)

    @handler("on.task", "methods.requestProperties.{key}")
    async def properties(self, request: dict) -> dict:
        return {"node": self.ctx.key, "macs": self.macs}


async def main() -> None:
    async with Runtime() as rt:  # the embedded in-memory bus; no broker
        for n in range(1000):
            await rt.spawn(Node, key=f"node{n}")
        await rt.publish("on.events", "node.discovered.node7", Discovered("52:54:00:00:00:07"))
        print(await rt.call(Address("on.task", "methods.requestProperties.node7"), {}))


trio.run(main)
