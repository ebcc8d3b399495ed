"""Regenerate the Python code beside protos/frontdesk/v1/*.proto (one documented command).

python scripts/gen_protos.py          # write the generated files
python scripts/gen_protos.py --check  # exit 1 when the committed files are stale
"""

from __future__ import annotations

import filecmp
import os
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
OUT = PROTOS / "frontdesk" / "v1"


def generate(target: Path) -> None:
    include = Path(protoc.__file__).parent / "_proto"
    files = sorted(str(p.relative_to(PROTOS)) for p in OUT.glob("*.proto"))
    args = [
        "grpc_tools.protoc",
        f"-I{PROTOS}",
        f"-I{include}",
        f"--python_out={target}",
        f"--grpc_python_out={target}",
        f"--mypy_out={target}",
        f"--mypy_grpc_out={target}",
        *files,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


def main() -> int:
    # The mypy plugins live beside the interpreter (the venv's bin/).
    os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
    check = "--check" in sys.argv[1:]
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        produced = Path(tmp) / "frontdesk" / "v1"
        names = sorted(p.name for p in produced.iterdir() if p.is_file())
        if check:
            stale = [
                n
                for n in names
                if not (OUT / n).exists() or not filecmp.cmp(produced / n, OUT / n, shallow=False)
            ]
            extra = [
                p.name
                for p in OUT.iterdir()
                if (p.name.endswith(("_pb2.py", "_pb2_grpc.py", "_pb2.pyi", "_pb2_grpc.pyi")))
                and p.name not in names
            ]
            if stale or extra:
                print("generated code is stale:", ", ".join(stale + extra))
                print("run: python scripts/gen_protos.py")
                return 1
            print("generated code is up to date")
            return 0
        for n in names:
            shutil.copyfile(produced / n, OUT / n)
        print(f"wrote {len(names)} files to {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
