"""The option vocabulary every command shares: the same flag for the same thing everywhere.

* the catalogue (image folder or ``image.zip``): ``--images`` (also ``--catalogue``, ``-c``);
* its ``train_annotation.csv``: ``--annotations`` / ``-a``;
* an image a command acts on (a question's attachment, a query image): ``--image`` / ``-i``;
* how many results: ``-k`` / ``--top-k``; where output goes: ``--out`` / ``-o``;
* machine-readable output: ``--json``; third-party log chatter: ``-v`` / ``--verbose``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

CatalogueOpt = Annotated[
    Optional[list[Path]],
    typer.Option(
        "--images", "--catalogue", "-c",
        help="the catalogue: image folder or image.zip that image names resolve against and retrieval searches (repeatable)",
    ),
]  # fmt: skip
AnnotationsOpt = Annotated[
    Optional[Path], typer.Option("--annotations", "-a", help="train_annotation.csv of the catalogue: file name + title")
]
ImageOpt = Annotated[
    Optional[list[Path]], typer.Option("--image", "-i", help="an image the command acts on (repeatable)")
]
TopKOpt = Annotated[int, typer.Option("-k", "--top-k", min=1, help="number of results")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="output file (written atomically)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="show third-party libraries' log output")]
