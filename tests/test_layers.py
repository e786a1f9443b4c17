"""The import contracts of .importlinter (issue 16): app > segui > jobs > models,
storage and models independent, storage importing only common, common at the bottom.
CI runs only pytest, so this test runs `lint-imports` (import-linter, pinned in
requirements.txt) from the repository root and fails with its report when a contract
is broken."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept():
    # the `lint-imports` command, run by this interpreter; no cache folder in the repository
    code = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    out = subprocess.run([sys.executable, "-c", code, "--no-cache", "--no-logo"], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-3000:]
    assert "0 broken" in out.stdout
