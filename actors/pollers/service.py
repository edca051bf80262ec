"""The poller service: pollers created, paused, resumed and deleted at run time.

``PollerService`` (key ``pollers``) keeps the definitions in a store, so they
survive a restart, and runs one ``PollerActor`` per definition. Its small API is
served on its own address; ``PollerClient`` wraps it::

    pollers = PollerClient(rt)
    await pollers.create(PollerDefinition(id="bmc-7-power", type="ipmi", command="power",
                                          nodeId="node-7", host="10.1.0.7",
                                          credentialsRef="bmc-admin", interval=15))
    await pollers.pause("bmc-7-power")

``start_pollers`` starts it with the IPMI and SNMP clients and the poller cache.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import attrs
import trio

from protocols import ipmi, snmp
from runtime import Actor, ActorRef, Delivery, Restart, Runtime, TaskChild, handler, message
from runtime.codec import OBJECT_TYPE

from ..services.config_store import ConfigStore
from .cache import ForgetPoller, PollerCache
from .credentials import CredentialStore
from .definitions import PollerDefinition, PollerDefinitionError
from .poller import Pause, PollerActor, PollerTools, Resume

log = logging.getLogger("rackbus.pollers")

SERVICE_KEY = "pollers"
CACHE_KEY = "poller-cache"
MAX_POLLERS = 100_000


def poller_key(poller_id: str) -> str:
    """The actor key of a poller."""
    return f"poller:{poller_id}"


@message("CreatePoller")
@attrs.frozen
class CreatePoller:
    definition: PollerDefinition


@message("PollerRequest")
@attrs.frozen
class PollerRequest:
    """Names a poller: ``action`` is ``pause``, ``resume`` or ``delete``."""

    pollerId: str
    action: str


@message("ListPollers")
@attrs.frozen
class ListPollers:
    """Asks for every poller's definition; sent untyped, it is the empty object ``{}``."""


class PollerService(Actor):
    """Owns the poller definitions and their actors."""

    def __init__(self, store: ConfigStore, tools: PollerTools) -> None:
        self.store = store
        self.tools = tools
        self.definitions: dict[str, PollerDefinition] = {}
        self.refs: dict[str, ActorRef] = {}

    async def on_start(self) -> None:
        for poller_id, data in (await self.store.load()).items():
            try:
                definition = self.ctx.runtime.codec.convert(data, PollerDefinition)
            except ValueError as exc:
                log.warning("stored poller %r ignored: %s", poller_id, exc)
                continue
            try:
                await self._start(definition)
            except Exception as exc:  # one poller that cannot start must not stop the rest
                log.error("stored poller %r not started: %s", poller_id, exc)
        log.info("pollers: %d loaded", len(self.definitions))

    async def _start(self, definition: PollerDefinition) -> None:
        def make() -> PollerActor:
            # A restart starts from the current definition (paused or not), not the first.
            return PollerActor(self.definitions.get(definition.id, definition), self.tools)

        ref = await self.ctx.spawn(
            make,
            key=poller_key(definition.id),
            restart=Restart.PERMANENT,
            mailbox_size=PollerActor.mailbox_size,
            overflow=PollerActor.overflow,
        )
        self.definitions[definition.id] = definition
        self.refs[definition.id] = ref

    def _known(self, poller_id: str) -> PollerDefinition:
        try:
            return self.definitions[poller_id]
        except KeyError:
            raise PollerDefinitionError(f"no poller {poller_id!r}") from None

    @handler()
    async def create(self, request: CreatePoller) -> PollerDefinition:
        definition = request.definition
        if definition.id in self.definitions:
            raise PollerDefinitionError(f"poller {definition.id!r} exists already")
        if len(self.definitions) >= MAX_POLLERS:
            raise PollerDefinitionError(f"at most {MAX_POLLERS} pollers")
        if definition.type == "ipmi":
            self.tools.credentials.ipmi(definition.credentialsRef)
        else:
            self.tools.credentials.snmp(definition.credentialsRef)
        await self.store.save(definition.id, self.ctx.runtime.codec.to_wire(definition))
        await self._start(definition)
        return definition

    @handler()
    async def change(self, request: PollerRequest) -> PollerDefinition:
        definition = self._known(request.pollerId)
        ref = self.refs[request.pollerId]
        if request.action == "delete":
            await self.store.delete(definition.id)
            del self.definitions[definition.id], self.refs[definition.id]
            await ref.stop()
            forget = ForgetPoller(definition.id)
            await self.ctx.tell(self.ctx.runtime.own_address(CACHE_KEY), forget)
            return definition
        if request.action not in ("pause", "resume"):
            raise PollerDefinitionError(
                f"action must be pause, resume or delete: {request.action!r}"
            )
        definition = attrs.evolve(definition, paused=request.action == "pause")
        await self.store.save(definition.id, self.ctx.runtime.codec.to_wire(definition))
        self.definitions[definition.id] = definition
        await self.ctx.tell(ref, Pause() if definition.paused else Resume())
        return definition

    @handler()
    async def list(self, request: ListPollers, delivery: Delivery) -> list[PollerDefinition]:
        if delivery.type_name == OBJECT_TYPE and delivery.payload:
            raise self._no_request(delivery.payload)
        return sorted(self.definitions.values(), key=lambda d: d.id)

    def _no_request(self, payload: object) -> PollerDefinitionError:
        """The error for an untyped payload with fields that reached ``list``.

        Such a payload is tried on each handler in turn and lands here when it fits
        no other request: ``ListPollers`` has no fields, so it would decode anything.
        The error says why it is no ``CreatePoller`` or ``PollerRequest``.
        """
        reasons = []
        for request_type in (CreatePoller, PollerRequest):
            try:
                self.ctx.runtime.codec.convert(payload, request_type)
            except ValueError as exc:
                reasons.append(str(exc))
        return PollerDefinitionError("not a poller request: " + "; ".join(reasons))


class PollerClient:
    """Calls the poller service of a runtime (or from an actor's ``ctx``)."""

    def __init__(self, runtime: Any, timeout: float = 10.0) -> None:
        self._runtime = runtime
        self._timeout = timeout

    async def _call(self, message_: object, returns: Any) -> Any:
        rt = self._runtime
        runtime = rt if isinstance(rt, Runtime) else rt.runtime
        address = runtime.own_address(SERVICE_KEY)
        return await rt.call(address, message_, timeout=self._timeout, returns=returns)

    async def create(self, definition: PollerDefinition) -> PollerDefinition:
        """Create and start a poller; its definition is stored."""
        created: PollerDefinition = await self._call(CreatePoller(definition), PollerDefinition)
        return created

    async def pause(self, poller_id: str) -> PollerDefinition:
        """Stop a poller's rounds until ``resume``."""
        return await self._call(PollerRequest(poller_id, "pause"), PollerDefinition)  # type: ignore[no-any-return]

    async def resume(self, poller_id: str) -> PollerDefinition:
        """Poll now, then on the interval again."""
        return await self._call(PollerRequest(poller_id, "resume"), PollerDefinition)  # type: ignore[no-any-return]

    async def delete(self, poller_id: str) -> PollerDefinition:
        """Stop a poller and forget its definition."""
        return await self._call(PollerRequest(poller_id, "delete"), PollerDefinition)  # type: ignore[no-any-return]

    async def list(self) -> list[PollerDefinition]:
        """Every poller's definition."""
        return await self._call(ListPollers(), list[PollerDefinition])  # type: ignore[no-any-return]


async def start_pollers(
    runtime: Runtime,
    store: ConfigStore,
    credentials: CredentialStore,
    *,
    graph_id: str = "pollers",
    timeout: float = 10.0,
    snmp_enabled: bool = True,
) -> PollerTools:
    """Start the IPMI and SNMP clients, the poller cache and the poller service."""
    tools = PollerTools(credentials, graph_id, timeout=timeout)

    async def hold_clients(*, task_status: trio.TaskStatus[None]) -> None:
        """Open the clients (again, after a crash) and lend them to every poller."""
        try:
            async with contextlib.AsyncExitStack() as clients:
                tools.ipmi = await clients.enter_async_context(ipmi.IpmiClient(timeout=timeout))
                if snmp_enabled:
                    tools.snmp = await clients.enter_async_context(snmp.SnmpClient())
                task_status.started()
                await trio.sleep_forever()
        finally:
            tools.ipmi = tools.snmp = None

    await runtime.root.start_child(TaskChild("pollers.clients", hold_clients, wait_started=True))
    await runtime.spawn(PollerCache, key=CACHE_KEY, restart=Restart.PERMANENT)
    await runtime.spawn(PollerService, store, tools, key=SERVICE_KEY, restart=Restart.PERMANENT)
    return tools
