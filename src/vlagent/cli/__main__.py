"""``python -m vlagent.cli eval QUERY_JSON --images DIR --out answers.json ...``: the ``vlagent``
command, run by this Python."""

from vlagent.cli.app import main

if __name__ == "__main__":
    main()
