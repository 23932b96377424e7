"""`dongbo healthcheck`: the container health check — asks this container's service for /healthz."""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request


def add_parser(commands) -> None:
    parser = commands.add_parser("healthcheck", help="exit 0 when the service in this container is healthy")
    parser.add_argument("--port", type=int, default=int(os.environ.get("DONGBO_METRICS_PORT", "9100") or 9100),
                        help="the service's DONGBO_METRICS_PORT (default: from the environment, else 9100)")
    parser.add_argument("--host", default=_probe_host(os.environ.get("DONGBO_METRICS_HOST", "")),
                        help="where to ask (default: DONGBO_METRICS_HOST, or 127.0.0.1 when it is a wildcard)")
    parser.set_defaults(handler=run)


def _probe_host(bound: str) -> str:
    """The address to ask a server bound to `bound`: a wildcard bind answers on the loopback too."""
    if bound in ("", "0.0.0.0", "::", "[::]"):
        return "127.0.0.1"
    return f"[{bound}]" if ":" in bound and not bound.startswith("[") else bound


def run(args) -> int:
    try:
        with urllib.request.urlopen(f"http://{args.host}:{args.port}/healthz", timeout=5) as response:
            print(response.read().decode())
            return 0
    except urllib.error.HTTPError as exc:
        detail = json.loads(exc.read() or b"{}").get("detail", exc.reason)
        print(f"unhealthy: {detail}", file=sys.stderr)
    except OSError as exc:
        print(f"unhealthy: no answer on port {args.port} ({exc})", file=sys.stderr)
    return 1
