"""Print the configuration reference table, or (--write FILE) refresh it in config/README.md."""

import sys

from foldatlas.config import load_schema, schema_markdown
from foldatlas.docs import replace_section

table = schema_markdown(load_schema())
if len(sys.argv) == 3 and sys.argv[1] == "--write":
    replace_section(sys.argv[2], "<!-- BEGIN GENERATED -->\n", "<!-- END GENERATED -->", table)
else:
    print(table, end="")
