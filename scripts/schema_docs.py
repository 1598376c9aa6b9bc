"""Print the Parquet schema tables, or (--write FILE) refresh them in the README."""

import sys

from foldatlas.docs import replace_section
from foldatlas.tables import schemas_markdown

text = schemas_markdown()
if len(sys.argv) == 3 and sys.argv[1] == "--write":
    replace_section(sys.argv[2], "<!-- BEGIN SCHEMAS -->\n", "<!-- END SCHEMAS -->", text)
else:
    print(text, end="")
