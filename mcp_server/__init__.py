"""MCP server for zi-isag-tool: the ``web_extract`` tool over stdio or streamable HTTP.

    python -m mcp_server                                       # stdio (for MCP clients that spawn it)
    python -m mcp_server --transport http --port 8765          # streamable HTTP on 127.0.0.1:8765/mcp
    ZI_ISAG_MCP_TOKEN=... python -m mcp_server --transport http --host 0.0.0.0 --allowed-host my.host
    python -m mcp_server --transport http --stateless          # replicas behind a load balancer

Settings come from ``ZI_ISAG_*`` variables and ``TAVILY_API_KEY`` (an MCP client that spawns the
server must list them in its ``env``). Local files are never read unless ``--allow-dir`` names
directories.
"""

from __future__ import annotations

import argparse
import logging
import os

DEFAULT_PORT = 8765
TOKEN_ENV = "ZI_ISAG_MCP_TOKEN"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mcp_server",
        description="Serve the zi-isag web_extract tool over MCP (stdio by default).",
    )
    parser.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    parser.add_argument("--host", default="127.0.0.1", help="HTTP bind address (default: localhost only)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"HTTP port (default {DEFAULT_PORT})")
    parser.add_argument(
        "--token",
        default=None,
        help=f"bearer token required on HTTP requests (default: ${TOKEN_ENV}; none = no token check)",
    )
    parser.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="extra Host/Origin name accepted on HTTP (the bound host and localhost always are); repeatable",
    )
    parser.add_argument(
        "--allow-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="let web_extract read local files under DIR (off by default); repeatable",
    )
    parser.add_argument(
        "--stateless",
        action="store_true",
        default=None,
        help="HTTP without sessions, so any replica behind a load balancer answers any request "
        "(default: $ZI_ISAG_MCP_STATELESS or off); answers are JSON unless --no-json-response",
    )
    parser.add_argument(
        "--json-response",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="answer each HTTP request with one JSON body; --no-json-response streams SSE, which carries "
        "progress notifications (default: $ZI_ISAG_MCP_JSON_RESPONSE, else JSON when stateless)",
    )
    parser.add_argument("--extractor", default=None, help="extractor backend (default: $ZI_ISAG_EXTRACTOR or ranker)")
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="level of the server's own log on stderr; third-party libraries log WARNING and above unless DEBUG",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from zi_isag_tool.logs import setup_logging

    # stdout carries the protocol in stdio mode: every log line goes to stderr, and no progress bar
    # (the client shows stderr as a log).
    setup_logging(
        args.log_level,
        verbose=args.log_level == "DEBUG",
        progress=False if args.transport == "stdio" else None,
        fmt="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    from pydantic import ValidationError

    from zi_isag_tool.errors import ZiIsagError
    from zi_isag_tool.extractors import get_extractor
    from zi_isag_tool.settings import Settings

    from .server import create_server, http_app, server_settings

    token = args.token or os.environ.get(TOKEN_ENV) or None
    if token and args.transport == "stdio":
        logging.getLogger(__name__).warning("--token applies to the HTTP transport only; ignored on stdio")
    try:
        given = {"extractor": args.extractor, "mcp_stateless": args.stateless, "mcp_json_response": args.json_response}
        base = Settings(**{name: value for name, value in given.items() if value is not None})
        settings = server_settings(base, args.allow_dir)
        # Build and load the extractor before serving, so a bad name or a missing model is one
        # clear error at start-up rather than a failed lifespan.
        extractor = get_extractor(settings.extractor, settings)
        _ = extractor.token_counter
        server = create_server(
            settings,
            extractor=extractor,
            token=token if args.transport == "http" else None,
            host=args.host,
            port=args.port,
        )
        if args.transport == "stdio":
            server.run("stdio")
        else:
            import uvicorn

            app = http_app(
                server,
                host=args.host,
                port=args.port,
                allowed_hosts=args.allowed_host,
                stateless=settings.mcp_stateless,
                json_response=settings.mcp_json_response,
            )
            uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level.lower(), log_config=None)
    except (ZiIsagError, ValidationError) as exc:
        logging.getLogger(__name__).error("%s", exc)
        return 2
    except KeyboardInterrupt:
        pass
    return 0
