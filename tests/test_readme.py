"""The README's example is the tested example file, and it runs."""

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_readme_embeds_the_example_verbatim() -> None:
    example = (ROOT / "examples" / "per_node.py").read_text()
    assert example in (ROOT / "README.md").read_text()


def test_example_runs() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "per_node.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert done.stdout.strip() == "{'node': 'node7', 'macs': ['52:54:00:00:00:07']}"


def test_readme_has_exactly_two_setup_commands() -> None:
    text = (ROOT / "README.md").read_text()
    assert text.count("```sh") == 2
    assert "scripts/run-tests.sh" in text
    assert (ROOT / ".ci" / "run").read_text().count("scripts/run-tests.sh") == 1


async def test_readme_testing_example(autojump_clock, rackbus_runtime) -> None:
    from runtime.testing import call_handler, wait_for_handler

    source = (ROOT / "examples" / "per_node.py").read_text().replace("trio.run(main)", "")
    namespace: dict[str, object] = {"__name__": "per_node"}
    exec(compile(source, "per_node.py", "exec"), namespace)
    node = namespace["Node"]

    ref = await rackbus_runtime.spawn(node, key="n1")
    async with wait_for_handler(ref, "discovered"):
        await rackbus_runtime.publish("on.events", "node.discovered.n1", {"mac": "aa:bb"})
    assert await call_handler(ref, "properties", {}) == {"node": "n1", "macs": ["aa:bb"]}


def _blocks(language: str) -> list[str]:
    text = (ROOT / "README.md").read_text()
    return [block.split("```", 1)[0] for block in text.split(f"```{language}\n")[1:]]


def test_readme_configuration_example_is_valid() -> None:
    import tomllib

    from actors.config_file import parse_config

    (example,) = _blocks("toml")
    config = parse_config(tomllib.loads(example))
    assert config.dhcp is not None and config.dhcp.proxy
    assert config.tftp is not None and config.nodes == {"52:54:00:12:34:56": "node-1"}


def test_readme_property_test_example_runs() -> None:
    (example,) = [block for block in _blocks("python") if "strategies import packets" in block]
    namespace: dict[str, object] = {"__name__": "readme_example"}
    exec(compile(example, "README.md", "exec"), namespace)
    test = namespace["test_my_handler_survives_any_packet"]
    test()  # type: ignore[operator]
