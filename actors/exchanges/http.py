"""``on.http``: the catch-all stream of every HTTP response.

``http.response`` carries the same ``HttpResponse {address, method, url,
statusCode, time}`` as ``http.response.<node>`` on ``on.events``, for every
response, whether or not the client's address maps to a known node: one binding
sees all HTTP traffic. The HTTP server publishes both. RackHD dropped this key
in 2015 (the seed doubts it as a duplicate); it is kept as that catch-all.
"""

from __future__ import annotations

from ..convention import Client, ExchangeDef, KeyDef, Kind
from .events import HttpResponse

NAME = "on.http"

RESPONSE = KeyDef(
    NAME,
    "http.response",
    Kind.EVENT,
    HttpResponse,
    stub="response",
    seed="http.response",
    doc="every HTTP response, node known or not",
)


class HttpClient(Client):
    """Publishes to the HTTP stream: ``await http.response(HttpResponse(...))``."""

    async def response(self, event: HttpResponse) -> None:
        """Publish ``http.response``."""
        await self._publish(RESPONSE, event)


EXCHANGE = ExchangeDef(
    NAME,
    "HTTP",
    "The stream of every HTTP response the HTTP server sends",
    (RESPONSE,),
    HttpClient,
)
