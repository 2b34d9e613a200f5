"""Generate the Python stubs for protos/ (make proto), or check they are current (make proto-check).

The .proto lives at protos/kameleoon/destination/v1/destination.proto, so the
generated modules sit at their proto path, ``kameleoon.destination.v1``, in the
callers' package under clients/python (the way googleapis-common-protos ships
``google.rpc``). The server imports the same modules: one copy of generated code.
"""

from __future__ import annotations

import argparse
import filecmp
import pathlib
import sys
import tempfile

import google.rpc.status_pb2
from grpc_tools import protoc

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
PROTO = "kameleoon/destination/v1/destination.proto"
OUT_ROOT = ROOT / "clients" / "python"
PACKAGE = pathlib.Path("kameleoon/destination/v1")
GENERATED = ("destination_pb2.py", "destination_pb2.pyi", "destination_pb2_grpc.py")


def generate(out_root: pathlib.Path) -> None:
    googleapis = pathlib.Path(google.rpc.status_pb2.__file__).parents[2]
    well_known = pathlib.Path(protoc.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTOS}",
        f"-I{googleapis}",
        f"-I{well_known}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        str(PROTOS / PROTO),
    ]
    if protoc.main(args) != 0:
        sys.exit("protoc failed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the committed stubs are not current")
    opts = parser.parse_args()
    if not opts.check:
        generate(OUT_ROOT)
        return
    with tempfile.TemporaryDirectory() as tmp:
        generate(pathlib.Path(tmp))
        fresh, committed = pathlib.Path(tmp) / PACKAGE, OUT_ROOT / PACKAGE
        stale = [name for name in GENERATED if not (committed / name).exists() or not filecmp.cmp(fresh / name, committed / name, shallow=False)]
    if stale:
        sys.exit(f"generated stubs are out of date, run `make proto`: {', '.join(stale)}")
    print("generated stubs are current")


if __name__ == "__main__":
    main()
