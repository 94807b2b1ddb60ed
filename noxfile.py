"""The project's command surface: ``nox`` runs lint, typecheck, tests and docs (what CI runs).

Other sessions: ``nox -s interop`` (only the tests against DCMTK, dicom3tools and Orthanc) and
``nox -s benchmark`` (every ``benchmarks/bench_*.py``, or those named after ``--``; the other
arguments after ``--`` are passed on to each, e.g. ``nox -s benchmark -- send --runs 7``).
Dependencies come from the PEP 735 groups in ``pyproject.toml`` (``[dependency-groups]``).
"""

from __future__ import annotations

from pathlib import Path

import nox

nox.needs_version = ">=2025.2.9"
nox.options.sessions = ["lint", "typecheck", "tests", "docs"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

ROOT = Path(__file__).parent
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")
LINT_PATHS = ("src", "tests", "benchmarks", "docs", "noxfile.py")


def _install(session: nox.Session, *groups: str, project: bool = True) -> None:
    """Install the project (as users get it, not editable) and the named dependency groups."""
    requirements = nox.project.dependency_groups(PYPROJECT, *groups) if groups else ()
    if project:
        session.install(".", *requirements)
    elif requirements:
        session.install(*requirements)


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff: lint rules and formatting."""
    _install(session, "lint", project=False)
    session.run("ruff", "check", *LINT_PATHS)
    session.run("ruff", "format", "--check", *LINT_PATHS)


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on src, tests and benchmarks (configured in pyproject.toml)."""
    _install(session, "typecheck")
    session.run("mypy", *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite, interop included, with coverage of sendtopacs_core.

    Coverage runs pytest (``coverage run -m pytest``) rather than pytest-cov's ``--cov`` so
    that modules pytest imports early (plugins) are measured too. The core's coverage must
    stay at 90 % or more.
    """
    _install(session, "test")
    session.run(
        "coverage",
        "run",
        "--branch",
        "--source=sendtopacs_core",
        "-m",
        "pytest",
        "-ra",
        *session.posargs,
    )
    session.run("coverage", "report", "--show-missing", "--skip-covered", "--fail-under=90")


@nox.session
def interop(session: nox.Session) -> None:
    """Only the tests that talk to external peers and validators (marker ``interop``)."""
    _install(session, "test")
    session.run("python", "-m", "pytest", "-ra", "-m", "interop", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation site, warnings as errors (``mkdocs build --strict``, see mkdocs.yml).

    Built into a temporary folder; ``nox -s docs -- --site-dir site`` keeps it.
    """
    _install(session, "docs")
    site = session.posargs or ["--site-dir", session.create_tmp()]
    session.run("mkdocs", "build", "--strict", *site, env={"NO_MKDOCS_2_WARNING": "1"})


BENCHMARKS = ("convert", "send", "worklist", "watch", "api", "video")


@nox.session
def benchmark(session: nox.Session) -> None:
    """Like-for-like benchmarks against DCMTK, ffmpeg, cp and the library (performance.md).

    All of them, or those named in the arguments (``convert``,
    ``send``, ``worklist``, ``watch``, ``api``, ``video``); other arguments (``--runs 7``,
    ``--smoke``, ``--check``...) go to each. Each report is also written to
    ``.nox/benchmark/tmp/<name>.md``.
    """
    _install(session)
    names = [arg for arg in session.posargs if arg in BENCHMARKS]
    options = [arg for arg in session.posargs if arg not in BENCHMARKS]
    results = Path(session.create_tmp())
    for name in names or BENCHMARKS:
        session.run(
            "python",
            f"benchmarks/bench_{name}.py",
            "--markdown",
            str(results / f"{name}.md"),
            *options,
        )
