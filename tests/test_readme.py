"""The README's training script runs, so the README cannot rot."""
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def readme_script():
    text = (ROOT / "README.md").read_text()
    marker = text.index("<!-- readme-script")
    return re.search(r"```python\n(.*?)```", text[marker:], re.S).group(1)


def test_readme_script_runs(tmp_path, monkeypatch, capsys):
    code = readme_script()
    assert len(code.strip().splitlines()) <= 16
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})
    out = capsys.readouterr().out
    accuracy = float(out.split("test accuracy:")[1].split()[0])
    assert accuracy >= 0.95


def test_readme_quickstart_matches_ci():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    commands = re.findall(r"```bash\n(.*?)\n```", readme, re.S)
    assert commands[:2] == ['pip install . && python -m fastnn demo',
                            'pip install -e ".[test]" && python -m pytest']
    assert commands[1] in ci.splitlines()
