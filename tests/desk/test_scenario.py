"""``docs/scenario.md`` runs as written.

Every ``sh`` block of the page is extracted and run, in order, against a live server on
loopback (SQLite and PostgreSQL): ``postbox admin …`` through the server's own CLI (on the
server's database and secrets, via the ``postbox.toml`` the page names), ``postbox-desk …``
in-process over HTTP. The runner understands exactly the shell the page uses (see its
introduction) and fails on anything else, so the page cannot drift from the code.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from support.client import Live, live_server

from postbox import cli as server_cli
from postbox.desk.cli import amain

DOC = Path(__file__).resolve().parents[2] / "docs" / "scenario.md"
_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)
_HEREDOC = re.compile(r"^cat > (\S+) <<'EOF'$")
_CAPTURE = re.compile(r"^([A-Z_][A-Z0-9_]*)=\$\((.*)\)$", re.DOTALL)
_ASSIGN = re.compile(r"^([A-Z_][A-Z0-9_]*)=(.*)$", re.DOTALL)
_JQ_TAIL = re.compile(r"^(.*?)\s*\|\s*jq\s+(-r|-e)\s+(\S+)$", re.DOTALL)
_FD_REDIRECT = re.compile(r"^(\d+)<(.+)$")
_VAR = re.compile(r"\$(?:\{([A-Z_][A-Z0-9_]*)\}|([A-Z_][A-Z0-9_]*))")
_PATH_PART = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]")


# --- reading the page -----------------------------------------------------------------------
@dataclass(frozen=True)
class Heredoc:
    path: str
    text: str


def statements(markdown: str) -> Iterator[str | Heredoc]:
    """The page's shell statements in order: continuation lines joined, documents whole."""
    for block in _BLOCK.findall(markdown):
        lines = block.splitlines()
        i = 0
        while i < len(lines):
            line = lines[i]
            i += 1
            doc = _HEREDOC.match(line.strip())
            if doc:
                body = []
                while lines[i] != "EOF":
                    body.append(lines[i])
                    i += 1
                i += 1
                yield Heredoc(doc.group(1), "".join(x + "\n" for x in body))
                continue
            while line.endswith("\\"):
                line = line[:-1] + " " + lines[i].strip()
                i += 1
            line = line.strip()
            if line and not line.startswith("#"):
                yield line


def jq_path(value: Any, path: str) -> Any:
    """``jq PATH`` for the paths the page uses: ``.a.b``, ``.a[0].b``."""
    pos = 0
    for m in _PATH_PART.finditer(path):
        assert m.start() == pos, f"unsupported jq path {path!r}"
        pos = m.end()
        name, index = m.groups()
        value = value[name] if name is not None else value[int(index)]
    assert pos == len(path), f"unsupported jq path {path!r}"
    return value


def last_json(text: str) -> Any:
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines, "no output to give to jq"
    return json.loads(lines[-1])


# --- running it -----------------------------------------------------------------------------
@dataclass
class Ran:
    argv: list[str]
    code: int
    out: str
    err: str


@dataclass
class Shell:
    live: Live
    cwd: Path
    env: dict[str, str]
    pinned: frozenset[str]
    transcript: list[Ran] = field(default_factory=list)

    def expand(self, token: str) -> str:
        def value(m: re.Match[str]) -> str:
            name = m.group(1) or m.group(2)
            assert name in self.env, f"${name} is used before it is set"
            return self.env[name]

        return _VAR.sub(value, token)

    def words(self, text: str) -> list[str]:
        return [self.expand(w) for w in shlex.split(text, comments=True)]

    async def run(self, statement: str | Heredoc) -> None:
        if isinstance(statement, Heredoc):
            (self.cwd / statement.path).write_text(statement.text, "utf-8")
            return
        if statement.startswith("set "):
            return
        capture = _CAPTURE.match(statement)
        if capture:
            name, inner = capture.groups()
            self.assign(name, await self.capture(inner))
            return
        assign = _ASSIGN.match(statement)
        if assign:
            words = self.words(assign.group(2))
            assert len(words) == 1, statement
            self.assign(assign.group(1), words[0])
            return
        jq = _JQ_TAIL.match(statement)
        if jq:
            command, flag, path = jq.groups()
            assert flag == "-e", statement
            result = await self.command(self.words(command))
            value = jq_path(last_json(result.out), shlex.split(path)[0])
            assert value not in (None, False), f"jq -e {path} is {value!r}: {result.out}"
            return
        words = self.words(statement)
        if words[0] == "chmod":
            for name in words[2:]:
                os.chmod(self.cwd / name, int(words[1], 8))
            return
        target = None
        if len(words) > 2 and words[-2] == ">":
            target, words = words[-1], words[:-2]
        result = await self.command(words)
        if target is not None:
            (self.cwd / target).write_text(result.out, "utf-8")

    def assign(self, name: str, value: str) -> None:
        if name not in self.pinned:  # the test's server, not the page's example address
            self.env[name] = value

    async def capture(self, inner: str) -> str:
        jq = _JQ_TAIL.match(inner)
        if jq:
            command, flag, path = jq.groups()
            assert flag == "-r", inner
            out = (await self.command(self.words(command))).out
        else:
            words = self.words(inner)
            assert words[:2] == ["jq", "-r"] and len(words) == 4, f"unsupported: {inner}"
            path = words[2]
            out = (self.cwd / words[3]).read_text("utf-8")
        value = jq_path(last_json(out), shlex.split(path)[0])
        assert isinstance(value, str) and value, f"jq -r {path} gave {value!r}"
        return value

    async def command(self, words: list[str]) -> Ran:
        fds: dict[str, int] = {}
        argv: list[str] = []
        for word in words[1:]:
            m = _FD_REDIRECT.match(word)
            if m:
                fds[m.group(1)] = os.open(self.cwd / m.group(2), os.O_RDONLY)
            else:
                argv.append(word)
        # the page's descriptor numbers are the shell's; here they are whatever os.open gave
        for i, word in enumerate(argv[:-1]):
            if word in ("--passphrase-fd", "--root-passphrase-fd"):
                assert argv[i + 1] in fds, f"{word} {argv[i + 1]} without a redirection"
                argv[i + 1] = str(fds[argv[i + 1]])
        try:
            if words[0] == "postbox-desk":
                out, err = io.StringIO(), io.StringIO()
                code = await amain(argv, stdout=out, stderr=err)
                ran = Ran(words, code, out.getvalue(), err.getvalue())
            elif words[0] == "postbox":
                ran = await asyncio.to_thread(self.operator, words, argv)
            else:
                raise AssertionError(f"the scenario runs only postbox commands: {words}")
        finally:
            for fd in fds.values():
                os.close(fd)
        self.transcript.append(ran)
        assert ran.code == 0, (ran.argv, ran.code, ran.out, ran.err)
        return ran

    def operator(self, words: list[str], argv: list[str]) -> Ran:
        out, err = io.StringIO(), io.StringIO()
        # relative paths (postbox.toml) resolve in the test's working folder, self.cwd
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = server_cli.main(argv)
        return Ran(words, code, out.getvalue(), err.getvalue())


def write_config(live: Live, path: Path) -> None:
    s = live.settings
    path.write_text(
        f"data_dir = {json.dumps(str(s.data_dir))}\n"
        f"db = {json.dumps(s.database_url)}\n"
        f"public_origin = {json.dumps(live.url)}\n"
        f"port = {s.port}\n",
        "utf-8",
    )


def outputs_of(shell: Shell, *words: str) -> list[str]:
    return [r.out for r in shell.transcript if all(w in r.argv for w in words)]


async def test_the_scenario_runs_as_written(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # the page's relative paths (desk/…, received/…)
    async with live_server(db_url, tmp_path / "var") as live:
        write_config(live, work / "postbox.toml")
        shell = Shell(live, work, {"SERVER": live.url}, frozenset({"SERVER"}))
        for statement in statements(DOC.read_text("utf-8")):
            await shell.run(statement)

        # what a reader of the page is promised, beyond every command exiting 0
        env = shell.env
        for name in ("ORG", "TEAM", "CW", "PROCEDURE", "APPLICATION", "MSG", "CASE", "DECISION"):
            assert env.get(name), name
        cw_read = outputs_of(shell, "read", "desk/kmeier")[0]
        assert "(verified)" in cw_read and "citizen" in cw_read
        assert "Yılmaz" in cw_read and "Y7K2M9P41" in cw_read  # form fields, decrypted
        cz_read = outputs_of(shell, "read", "desk/ayse")[0]
        assert "of 'Stadt Nürnberg – Ausländerbehörde', signed by caseworker" in cz_read
        assert f"{env['CW']}" in cz_read and "(verified)" in cz_read
        for name in ("reisepass.pdf", "mietvertrag.pdf"):
            assert (work / "received" / name).read_bytes() == (work / name).read_bytes()
        assert (work / "bescheid" / "bescheid.pdf").read_bytes() == (
            work / "bescheid.pdf"
        ).read_bytes()
        shown = outputs_of(shell, "case", "show")[0]
        assert "Status:    decided" in shown
        application = last_json((work / "application.json").read_text("utf-8"))
        assert application["receipt_verified"] is True
        assert re.fullmatch(r"ABH-20\d\d-\d{6}", application["reference"])
        receipts = [last_json(o) for o in outputs_of(shell, "receipts", "--json")]
        citizen_side, caseworker_side = receipts
        assert citizen_side["submission"]["verified"] is True
        assert [r["reader"] for r in citizen_side["reads"]] == [env["CW"]]
        events = [e["event"] for e in caseworker_side["delivery"]["events"]]
        assert events[0] == "available" and "retrieved" in events
        assert len(caseworker_side["reads"]) == 1
