"""The design notes are part of the repository, and citations of them hold."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
DESIGN = ROOT / "docs" / "design.md"
SKIP_DIRS = {".git", ".venv", "runs", "__pycache__", ".pytest_cache",
             ".hypothesis", "build", "dist"}


def _text_files():
    for path in ROOT.rglob("*"):
        if any(part in SKIP_DIRS or part.endswith(".egg-info")
               for part in path.relative_to(ROOT).parts):
            continue
        if path.is_file() and path.suffix in (".py", ".md", ".toml", ".cfg",
                                              ".txt", ".sh", ""):
            try:
                yield path, path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue


def _headings():
    return {line[3:].strip() for line in
            DESIGN.read_text(encoding="utf-8").splitlines()
            if line.startswith("## ")}


def test_no_citation_of_a_document_outside_the_repository():
    outside = "DESIGN" + ".md"  # split so this file does not match itself
    offenders = [str(p.relative_to(ROOT)) for p, text in _text_files()
                 if outside in text]
    assert offenders == []


def test_design_citations_name_existing_sections():
    headings = _headings()
    assert len(headings) >= 8
    cited = set()
    for path, text in _text_files():
        # Citations may wrap across comment lines: collapse the markers.
        flat = re.sub(r"\s*\n\s*#?\s*", " ", text)
        for title in re.findall(r'docs/design\.md, "([^"]+)"', flat):
            cited.add(title)
            assert title in headings, (str(path.relative_to(ROOT)), title)
    assert cited, "no citation of docs/design.md found"
