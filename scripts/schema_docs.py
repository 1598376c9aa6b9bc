"""Print the Parquet schema tables, or (--write FILE) refresh them in the README."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from foldatlas.tables import schemas_markdown  # noqa: E402

BEGIN, END = "<!-- BEGIN SCHEMAS -->\n", "<!-- END SCHEMAS -->"
text = schemas_markdown()
if len(sys.argv) == 3 and sys.argv[1] == "--write":
    path = Path(sys.argv[2])
    head, rest = path.read_text().split(BEGIN)
    path.write_text(head + BEGIN + text + END + rest.split(END)[1])
else:
    print(text, end="")
