"""`dongbo users add | list | disable | passwd`: the web application's accounts.

The password is read from standard input when it is not a terminal (`echo … | dongbo users add …`, for
scripts), else asked twice without echo. It never appears on the command line, where `ps` would show it.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from cli.common import operator_command, table


def add_parser(commands) -> None:
    parser = commands.add_parser("users", help="accounts of the web application")
    actions = parser.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="create an account (password from stdin or a prompt)")
    add.add_argument("name")
    add.add_argument("--role", choices=("viewer", "operator"), required=True,
                     help="viewer: search and open dossiers; operator: also dead letters and the access log")
    add.add_argument("--units", default="", metavar="U1,U2", help="only these units' dossiers (default: all)")
    actions.add_parser("list", help="list the accounts")
    disable = actions.add_parser("disable", help="disable an account and end its sessions")
    disable.add_argument("name")
    passwd = actions.add_parser("passwd", help="set a new password (ends the account's sessions)")
    passwd.add_argument("name")
    parser.set_defaults(handler=operator_command("users", run_users))


def read_password(stdin=None) -> str:
    stdin = stdin or sys.stdin
    if not stdin.isatty():
        return stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise ValueError("the two passwords differ")
    return first


def run_users(settings, args: argparse.Namespace) -> int:
    from services.web import accounts
    from shared.db.engine import current_revision, make_engine, schema_problem

    engine = make_engine(settings.database_url.get_secret_value())
    try:
        if problem := schema_problem(current_revision(engine)):
            print(f"dongbo users: {problem}", file=sys.stderr)
            return 2
        command = args.users_command
        if command == "list":
            rows = [[u.username, u.role, ",".join(u.units) or "(all)", "disabled" if u.disabled else "active"]
                    for u in accounts.list_users(engine)]
            print(table(["NAME", "ROLE", "UNITS", "STATE"], rows))
        elif command == "add":
            units = [u.strip() for u in args.units.split(",") if u.strip()]
            accounts.add_user(engine, args.name, args.role, units, read_password())
            print(f"user {args.name} added ({args.role}{'; units ' + ','.join(units) if units else ''})")
        elif command == "disable":
            accounts.disable_user(engine, args.name)
            print(f"user {args.name} disabled; their sessions ended")
        else:
            accounts.set_password(engine, args.name, read_password())
            print(f"password of {args.name} changed; their sessions ended")
    except (accounts.AccountError, ValueError) as exc:
        print(f"dongbo users: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    return 0
