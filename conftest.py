# Fixtures shared by the whole suite live in tests/fixtures_*.py, one module per
# concern; this root conftest only loads them.
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

pytest_plugins = [
    "tests.fixtures_databases",
    "tests.fixtures_chain",
    "tests.fixtures_app",
    "tests.fixtures_browser",
    "tests.fixtures_plagiarism",
]
