"""Print the configuration reference table, or (--write FILE) refresh it in config/README.md."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from foldatlas.config import load_schema, schema_markdown  # noqa: E402

BEGIN, END = "<!-- BEGIN GENERATED -->\n", "<!-- END GENERATED -->"
table = schema_markdown(load_schema(Path(__file__).parents[1] / "workflow/schemas/config.schema.yaml"))
if len(sys.argv) == 3 and sys.argv[1] == "--write":
    path = Path(sys.argv[2])
    head, rest = path.read_text().split(BEGIN)
    path.write_text(head + BEGIN + table + END + rest.split(END)[1])
else:
    print(table, end="")
