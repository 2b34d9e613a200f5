"""Generate the Python stubs for protos/ (make proto), or check they are current (make proto-check).

The .proto lives at protos/kameleoon/destination/v1/destination.proto; it is
mapped to the virtual path service/api/destination.proto so the generated
modules import each other as ``service.api.*`` (a top-level ``kameleoon``
package would clash with Kameleoon's own Python SDK).
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
PROTO_DIR = ROOT / "protos" / "kameleoon" / "destination" / "v1"
GENERATED = ("destination_pb2.py", "destination_pb2.pyi", "destination_pb2_grpc.py")


def generate(out_root: pathlib.Path) -> None:
    googleapis = pathlib.Path(google.rpc.status_pb2.__file__).parents[2]
    well_known = pathlib.Path(protoc.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-Iservice/api={PROTO_DIR}",
        f"-I{googleapis}",
        f"-I{well_known}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        str(PROTO_DIR / "destination.proto"),
    ]
    if protoc.main(args) != 0:
        sys.exit("protoc failed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("target", help="the package directory holding the stubs (service/api)")
    parser.add_argument("--check", action="store_true", help="fail if the stubs are not current")
    opts = parser.parse_args()
    target = ROOT / opts.target
    if not opts.check:
        generate(ROOT)
        return
    with tempfile.TemporaryDirectory() as tmp:
        generate(pathlib.Path(tmp))
        fresh = pathlib.Path(tmp) / "service" / "api"
        stale = [name for name in GENERATED if not filecmp.cmp(fresh / name, target / name, shallow=False)]
    if stale:
        sys.exit(f"generated stubs are out of date, run `make proto`: {', '.join(stale)}")
    print("generated stubs are current")


if __name__ == "__main__":
    main()
