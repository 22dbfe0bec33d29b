"""A real MCP client (the Python `mcp` SDK) that drives cw's MCP server for the tests.

    client.py stdio CW_BINARY [ARGS...]   # starts `cw mcp` itself, over stdio
    client.py http URL [TOKEN]            # Streamable HTTP, with a bearer token if given

Reads a plan from stdin, {"calls": [{"tool": NAME, "args": {...}}], "prompt": {"name": N,
"args": {...}}}, lists the tools and prompts, makes each call in order and prints one JSON
document with what the server answered, as on the wire: {"instructions": ..., "tools": [...],
"prompts": [...], "calls": [...], "prompt": {...}}. The Rust tests assert on that document. A session that fails
prints {"failure": {"type", "message", "code"}} (what the SDK raised) and exits with 3.
"""

import asyncio
import json
import os
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


def failure(error):
    """What a user of the SDK is shown of a failed session: the innermost error (anyio's task
    groups wrap it in ExceptionGroups), with its MCP error code and message when it has one."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    out = {"type": type(error).__name__, "message": str(error)}
    if hasattr(error, "error") and hasattr(error.error, "code"):
        out["code"] = error.error.code
        out["message"] = error.error.message
    return out


def wire(model):
    return model.model_dump(by_alias=True, mode="json", exclude_none=True)


async def drive(session, plan):
    init = await session.initialize()
    out = {
        "instructions": init.instructions,
        "tools": wire(await session.list_tools())["tools"],
        "prompts": wire(await session.list_prompts())["prompts"],
        "calls": [],
    }
    for call in plan.get("calls", []):
        result = await session.call_tool(call["tool"], call.get("args", {}))
        out["calls"].append({"tool": call["tool"], "args": call.get("args", {}), **wire(result)})
    if "prompt" in plan:
        p = plan["prompt"]
        out["prompt"] = wire(await session.get_prompt(p["name"], p.get("args", {})))
    return out


async def main():
    plan = json.load(sys.stdin)
    transport = sys.argv[1]
    if transport == "stdio":
        params = StdioServerParameters(
            command=sys.argv[2], args=sys.argv[3:], env=dict(os.environ)
        )
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                out = await drive(session, plan)
    elif transport == "http":
        headers = {"Authorization": f"Bearer {sys.argv[3]}"} if len(sys.argv) > 3 else {}
        async with create_mcp_http_client(headers=headers) as http:
            async with streamable_http_client(sys.argv[2], http_client=http) as streams:
                read, write = streams[0], streams[1]
                async with ClientSession(read, write) as session:
                    out = await drive(session, plan)
    else:
        sys.exit(f"unknown transport {transport!r}: use stdio or http")
    json.dump(out, sys.stdout)


try:
    asyncio.run(main())
except Exception as error:  # noqa: BLE001 - the failure is the report
    # A session that failed (a refused token, a server that is gone): what the SDK raised,
    # as one JSON document, and exit status 3.
    json.dump({"failure": failure(error)}, sys.stdout)
    sys.exit(3)
