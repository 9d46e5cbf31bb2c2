"""What the distribution carries (issue 26): the BSD-3 notice in the repository and the
wheel, stripped extension modules, full classifiers and project URLs, an absolute chart
link in the README (it is the package index's project page), and the stub of every
compiled function the issue names.

Checks read the source tree's files when they sit beside the tests, and the installed
distribution's metadata when the suite runs against a wheel (HMMFAST_TEST_WHEEL=1).
"""

import os
import re
import struct
import sys
from pathlib import Path

import pytest

import hmmfast

REPO = Path(__file__).resolve().parents[1]
IN_TREE = (REPO / "pyproject.toml").exists()
WHEEL = os.environ.get("HMMFAST_TEST_WHEEL") == "1"


def pyproject():
    import tomllib

    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


@pytest.mark.skipif(not IN_TREE, reason="the source tree is not beside the tests")
def test_license_file_is_bsd_3_clause_and_declared():
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("BSD 3-Clause License")
    assert "Neither the name of the copyright holder" in text  # the third clause
    project = pyproject()
    assert project["license"] == "BSD-3-Clause" and project["license-files"] == ["LICENSE"]


@pytest.mark.skipif(not WHEEL, reason="set HMMFAST_TEST_WHEEL=1 when testing a wheel")
def test_the_wheel_carries_the_license():
    from importlib import metadata

    dist = metadata.distribution("hmmfast")
    names = [str(f) for f in dist.files or []]
    license_files = [n for n in names if n.endswith("LICENSE") and ".dist-info" in n]
    assert license_files, names[:20]
    assert "BSD 3-Clause License" in dist.locate_file(license_files[0]).read_text()
    meta = dist.metadata
    assert meta["License-Expression"] == "BSD-3-Clause"
    check_classifiers(meta.get_all("Classifier"), dict(
        u.split(", ", 1) for u in meta.get_all("Project-URL") or []))


@pytest.mark.skipif(not IN_TREE, reason="the source tree is not beside the tests")
def test_classifiers_and_urls():
    project = pyproject()
    check_classifiers(project["classifiers"], project["urls"])


def check_classifiers(classifiers, urls):
    versions = {c.rsplit(" :: ", 1)[1] for c in classifiers
                if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)}
    assert versions == {"3.10", "3.11", "3.12", "3.13"}  # cibuildwheel's cp310-cp313
    assert "Typing :: Typed" in classifiers
    assert any(c.startswith("Development Status :: ") for c in classifiers)
    assert not any(c.startswith("License ::") for c in classifiers)  # PEP 639: expression
    for key in ("Homepage", "Source", "Issues"):
        assert urls[key].startswith("https://"), key


@pytest.mark.skipif(not (REPO / "README.md").exists(), reason="README.md not beside tests")
def test_readme_images_are_absolute_links():
    """The README is the package index's project page: relative links break there."""
    targets = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (REPO / "README.md").read_text())
    assert targets, "the README shows the benchmark chart"
    assert all(t.startswith("https://") for t in targets), targets


def elf_sections(path):
    """Section names of a 64-bit little-endian ELF file (the header table, no tool)."""
    data = Path(path).read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        pytest.skip("not a 64-bit little-endian ELF file")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    names_at = struct.unpack_from("<Q", data, shoff + shstrndx * shentsize + 0x18)[0]
    out = []
    for i in range(shnum):
        name, = struct.unpack_from("<I", data, shoff + i * shentsize)
        end = data.index(b"\0", names_at + name)
        out.append(data[names_at + name:end].decode())
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ELF extension modules")
@pytest.mark.skipif(os.environ.get("HMMFAST_DEBUG", "") not in ("", "0"),
                    reason="a debugging build keeps its symbols")
def test_extension_modules_are_stripped():
    modules = sorted(Path(hmmfast.__file__).parent.glob("_*.so"))
    assert modules
    for module in modules:
        sections = elf_sections(module)
        assert ".dynsym" in sections  # PyInit_ still exported
        assert ".symtab" not in sections and ".debug_info" not in sections, module.name


def test_every_function_of_trellis_has_a_stub():
    stub = Path(hmmfast.__file__).parent / "_trellis.pyi"
    text = stub.read_text()
    for name in ("forward", "forward_backward", "forward_steps", "model_score"):
        assert re.search(rf"^def {name}\(", text, re.M), name
