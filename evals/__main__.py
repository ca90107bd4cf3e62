"""``python -m vlagent.evals eval QUERY_JSON --images DIR --out answers.json ...``"""

from vlagent.evals.cli import app

if __name__ == "__main__":
    app()
