"""README.md's text: every setting it names exists, every section starts from its set-up."""

import itertools
import re
from typing import List, Set

from kx.config.keys import CONFIG_GROUPS, config_keys, group_options
from tests.conftest import PROJECT_DIR, composed
from tests.test_readme import readme_commands

GROUP = r"(?:backend|model|dataset|target|train|tracking|sweep|export)"
FILES = (".py", ".log", ".keras", ".yaml", ".json", ".png", ".npz", ".db", ".params")
REFUSED = {"train.epochz"}  # the README's example of a key kx refuses


def expand(text: str) -> str:
    """``train.early_stopping.{enabled,patience}`` -> ``train.early_stopping.enabled train.early_stopping.patience``."""
    return re.sub(r"([\w.]+\.)\{([\w,]+)\}", lambda m: " ".join(m[1] + w for w in m[2].split(",")), text)


def listed(text: str) -> List[str]:
    """The keys of lists like "settings live under `train.` (`epochs`, `batch_size` (...), ...)"."""
    keys = []
    for match in re.finditer(rf"under `({GROUP})\.` \(", text):
        depth, end = 1, match.end()
        while depth:
            depth += {"(": 1, ")": -1}.get(text[end], 0)
            end += 1
        inner = re.sub(r"\([^()]*\)", "", text[match.end() : end - 1])
        names = " ".join(re.findall(r"`([\w.{},]+)`", inner))
        keys += [f"{match[1]}.{name}" for name in expand(names).split()]
    return keys


def readme_keys() -> Set[str]:
    text = (PROJECT_DIR / "README.md").read_text()
    named = re.findall(rf"(?<![\w./-]){GROUP}\.[A-Za-z_][\w.]*\w", expand(text))
    return {k for k in named + listed(text) if not k.endswith(FILES)} - REFUSED


def schema_keys() -> Set[str]:
    """The keys of the config composed with each option of each group: the n-th options of all
    groups in one composition (each group fills its own part of the config)."""
    options = [[f"{group}={option}" for option in group_options(group)] for group in CONFIG_GROUPS]
    keys: Set[str] = set()
    for chosen in itertools.zip_longest(*options):
        keys.update(config_keys(composed(tuple(o for o in chosen if o))))
    return keys


def test_the_readme_names_only_settings_that_exist():
    keys = readme_keys()
    assert {"backend.precision", "train.learning_rate", "model.builder", "sweep.budget.trials"} <= keys
    assert "train.early_stopping.patience" in keys  # the brace lists are read
    known = schema_keys()
    missing = sorted(key for key in keys if key not in known)
    assert not missing, f"README.md names settings the schema does not have: {missing}"


def test_set_up_lines_work_as_root_and_the_sagemaker_section_installs_its_extra():
    commands = readme_commands()
    assert not [c for c in commands if c.startswith("sudo ")]  # a root shell (a container) has no sudo
    first_launch = next(
        i for i, c in enumerate(commands) if c.startswith("python launch.py target=sagemaker")
    )
    assert 'pip install -e ".[sagemaker]"' in commands[:first_launch]


def test_the_readme_states_the_pytest_command_ci_runs():
    ci = (PROJECT_DIR / ".ci" / "run").read_text().strip()
    command = re.search(r"\.venv/bin/python -m (pytest.*)$", ci)
    assert command, "the last line of .ci/run runs pytest"
    assert f"`{command.group(1)}`" in (PROJECT_DIR / "README.md").read_text()
