"""`dongbo web`: serves the officials' web application (services/web) with uvicorn.

It listens on DONGBO_WEB_HOST:DONGBO_WEB_PORT (127.0.0.1:8000 by default) and is meant to sit behind the
province's reverse proxy, which terminates HTTPS and sets X-Forwarded-Proto / X-Forwarded-For; those are
trusted only from DONGBO_WEB_TRUSTED_PROXIES.
"""

from __future__ import annotations

import argparse

from cli.common import operator_command


def add_parser(commands) -> None:
    parser = commands.add_parser("web", help="serve the web application for officials")
    parser.add_argument("--host", help="address to listen on (default: DONGBO_WEB_HOST)")
    parser.add_argument("--port", type=int, help="port to listen on (default: DONGBO_WEB_PORT)")
    parser.set_defaults(handler=operator_command("web", run_web))


def run_web(settings, args: argparse.Namespace) -> int:
    import uvicorn

    from services.web.app import create_app
    from shared.db.engine import make_engine, wait_for_schema
    from shared.logs import setup_logging

    setup_logging(settings.log_level, bool(settings.log_json))
    engine = make_engine(settings.database_url.get_secret_value())
    wait_for_schema(engine, "web")
    app = create_app(settings, engine=engine)
    host, port = args.host or settings.web_host, args.port or settings.web_port
    print(f"dongbo web: http://{host}:{port}/", flush=True)
    uvicorn.run(app, host=host, port=port, proxy_headers=True,
                forwarded_allow_ips=",".join(settings.web_trusted_proxies) or "127.0.0.1",
                server_header=False, log_level=settings.log_level.lower(), access_log=False)
    return 0
