"""Print the configuration reference table, or (--write FILE) refresh it in config/README.md."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from foldatlas.config import load_schema, schema_markdown  # noqa: E402
from foldatlas.docs import replace_section  # noqa: E402

table = schema_markdown(load_schema(Path(__file__).parents[1] / "workflow/schemas/config.schema.yaml"))
if len(sys.argv) == 3 and sys.argv[1] == "--write":
    replace_section(sys.argv[2], "<!-- BEGIN GENERATED -->\n", "<!-- END GENERATED -->", table)
else:
    print(table, end="")
