"""``python -m protocols.tftp ROOT [--host H] [--port P]``: serve a directory read-only."""

from __future__ import annotations

import argparse

import trio

from ._content import DirectoryRoot
from ._trio import ServerConfig, TftpServer


async def _main(args: argparse.Namespace) -> None:
    config = ServerConfig(max_sessions=args.max_sessions, max_sessions_per_client=args.max_sessions)
    server = TftpServer(DirectoryRoot(args.root), host=args.host, port=args.port, config=config)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve)
        print(f"listening on {args.host}:{port}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("root")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=6969)
    parser.add_argument("--max-sessions", type=int, default=512)
    try:
        trio.run(_main, parser.parse_args())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
