"""`python -m sr_app.ui.share`: list and delete the shared comparisons of a data folder.

    python -m sr_app.ui.share list [--data-dir DIR] [--base-url http://host:port]   # with sizes and the total
    python -m sr_app.ui.share delete ID [ID ...] [--data-dir DIR]

The data folder is the app's ``--data-dir`` (the survey's), else ``$SR_LAB_DATA``, else ``~/.local/share/sr-lab``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from sr_app.cli import add_data_dir_option, run_command
from sr_app.data_dir import app_url, data_dir_from_env
from sr_app.ui.share import (
    delete_shared,
    list_shared,
    share_link,
    shared_dir,
    stored_bytes,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sr_app.ui.share", description="Manage shared comparisons.")
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="list shared comparisons with their sizes and links, and the total")
    listing.add_argument("--base-url", help="address of the app, for the links (default: the one it recorded)")
    delete = commands.add_parser("delete", help="delete shared comparisons")
    delete.add_argument("ids", nargs="+", metavar="ID")
    add_data_dir_option(parser, [listing, delete], help="the app's data folder (default $SR_LAB_DATA)")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    data_dir = data_dir_from_env(args.data_dir)
    if args.command == "delete":
        for share_id in args.ids:
            delete_shared(data_dir, share_id)
            print(f"deleted {share_id}")
        return
    base_url = args.base_url or app_url(data_dir)
    everything = list_shared(data_dir)
    for shared in everything:
        megabytes = stored_bytes(shared_dir(data_dir) / shared.id) / 1e6
        height, width = shared.size
        print(
            f"{shared.id}  {shared.created:%Y-%m-%d %H:%M} UTC  {shared.stem} ({shared.mode}, "
            f"{width}×{height}, {len(shared.views)} images, {megabytes:.1f} MB)  {share_link(base_url, shared.id)}"
        )
    if everything:
        print(f"{len(everything)} comparisons, {stored_bytes(shared_dir(data_dir)) / 1e6:.1f} MB in total")
    else:
        print(f"No shared comparisons in {data_dir}.")


if __name__ == "__main__":
    run_command(main)
